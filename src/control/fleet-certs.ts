/**
 * Certificates through the fleet (Node host of cert-seal.ts), for a fleet that names its issuer (`[acme] issuer`):
 *   every box  writes its public curve key (`xkey.<box>`), watches `cert.*`, opens the key sealed to it and puts a
 *              newer certificate into service through HAProxy's runtime API (no restart, no reload);
 *   the issuer watches `xkey.*` and publishes each ACME certificate it puts into service (issued, renewed, or found
 *              at start) sealed to every box's key, again whenever a box's key appears or changes.
 * NATS permissions (credentials.ts): a box may write its own `xkey.<box>` only; `cert.*` is the issuer's and the
 * operator's. Runs in the background: a box serves what it has while NATS is away.
 */
import type { KeyPair } from "@nats-io/nkeys";
import type { ControlConfig } from "../config/control-schema.ts";
import type { CertInfo, CertPair } from "../frontdoor/cert-store.ts";
import { BoxXkeySchema, certKeys, CertRecordSchema, coversRecipients, loadOrCreateXkey, openCertificateKey, sealCertificate, type CertRecord } from "./cert-seal.ts";
import { FleetKv, type KvEntry } from "./fleet-kv.ts";
import { parseRecord } from "./fleet.ts";
import { connectForever, retryOpening } from "./nats.ts";

/** What the front door's certificate manager offers (src/frontdoor/certificates.ts). */
export interface FleetCertificateHost {
  acmeSites(): { site: string; pair?: CertPair; info?: CertInfo }[];
  offerIssued(site: string, pair: CertPair): Promise<boolean>;
  onAcmeInstalled(listener: (site: string, pair: CertPair, info: CertInfo) => void): void;
}

export interface FleetCertsOptions {
  box: string;
  cfg: ControlConfig;
  /** The box's curve seed (made at first start, mode 0600): `<store_dir>/.run/fleet-cert.xk`. */
  xkeyPath: string;
  /** Whether this box is the issuer. */
  issues: boolean;
  certificates: FleetCertificateHost;
  log?: (line: string) => void;
}

export interface FleetCerts {
  /** This box's public curve key. */
  readonly xkey: string;
  stop(): Promise<void>;
}

export function startFleetCertificates(opts: FleetCertsOptions): FleetCerts {
  const log = opts.log ?? ((line: string) => console.log(`certificates: ${line}`));
  const kp: KeyPair = loadOrCreateXkey(opts.xkeyPath);
  const xkey = kp.getPublicKey();
  const recipients = new Map<string, string>();
  let kv: FleetKv | undefined;
  let stopped = false;
  const stops: (() => void)[] = [];
  let queue = Promise.resolve();
  const serially = (what: string, job: () => Promise<void>) => {
    queue = queue.then(job).catch((err: Error) => log(`${what} failed: ${err.message}`));
  };

  /** Issuer: publishes a site's certificate unless the bucket already gives every box this serial. */
  const publish = async (site: string, pair: CertPair, info: CertInfo) => {
    if (!kv) return;
    const key = certKeys.cert(site);
    const stored = await kv.get(key);
    let before: CertRecord | undefined;
    try {
      before = stored ? parseRecord(CertRecordSchema, key, stored.value) : undefined;
    } catch {
      before = undefined; // a malformed record is replaced
    }
    if (coversRecipients(before, info.serial, recipients)) return;
    const record = sealCertificate({ site, serial: info.serial, notAfter: info.notAfter, chainPem: pair.chainPem, keyPem: pair.keyPem }, { box: opts.box, kp }, recipients);
    await kv.put(key, JSON.stringify(record));
    log(`published ${site} (serial ${info.serial}) sealed to ${recipients.size} boxes: ${[...recipients.keys()].sort().join(", ")}`);
  };
  const publishAll = () => {
    for (const s of opts.certificates.acmeSites()) if (s.pair && s.info) serially(`publishing ${s.site}`, () => publish(s.site, s.pair!, s.info!));
  };
  let republish: NodeJS.Timeout | undefined;

  /**
   * Every box: the last record of each site, opened with this box's key and put into service when newer. Kept and
   * tried again every few seconds: a site added live after its record came, an install that failed.
   */
  const latest = new Map<string, KvEntry>();
  const problems = new Map<string, string>();
  const receive = async (e: KvEntry) => {
    try {
      const record = parseRecord(CertRecordSchema, e.key, e.value);
      if (record.issuer === opts.box) return;
      const served = opts.certificates.acmeSites().find((s) => s.site === record.site);
      if (!served || served.info?.serial === record.serial) return; // a site this box does not serve, or in service
      const keyPem = openCertificateKey(record, opts.box, kp);
      if (await opts.certificates.offerIssued(record.site, { chainPem: record.chain, keyPem })) {
        log(`installed ${record.site} (serial ${record.serial}) from ${record.issuer}`);
      }
      problems.delete(e.key);
    } catch (err) {
      const problem = (err as Error).message;
      if (problems.get(e.key) !== problem) log(`${e.key}: ${problem}`); // said once, not at every retry
      problems.set(e.key, problem);
    }
  };
  const retry = setInterval(() => {
    for (const e of latest.values()) serially(`installing ${e.key}`, () => receive(e));
  }, 5_000);
  retry.unref();

  void (async () => {
    const nc = await connectForever(opts.cfg, `parrot-certs ${opts.box}`);
    if (stopped) return void (await nc.close());
    stops.push(() => void nc.close().catch(() => undefined));
    await retryOpening(
      async () => {
        kv = await FleetKv.open(nc, opts.cfg);
        const mine = await kv.get(certKeys.xkey(opts.box));
        const current = mine ? (JSON.parse(mine.value) as { xkey?: string }).xkey : undefined;
        if (current !== xkey) await kv.put(certKeys.xkey(opts.box), JSON.stringify({ v: 1, box: opts.box, xkey, at: Date.now() }));
        if (opts.issues) {
          opts.certificates.onAcmeInstalled((site, pair, info) => serially(`publishing ${site}`, () => publish(site, pair, info)));
          stops.push(
            await kv.watch("xkey.*", (e) => {
              try {
                const r = parseRecord(BoxXkeySchema, e.key, e.value);
                if (recipients.get(r.box) === r.xkey) return;
                recipients.set(r.box, r.xkey);
              } catch (err) {
                return log((err as Error).message);
              }
              // The watch delivers every box's key at once at start: one round of publishing after them.
              clearTimeout(republish);
              republish = setTimeout(publishAll, 200);
            }),
          );
        } else {
          stops.push(
            await kv.watch("cert.*", (e) => {
              latest.set(e.key, e);
              serially(`installing ${e.key}`, () => receive(e));
            }),
          );
        }
        log(`following the fleet's certificates (${opts.issues ? "this box issues" : "installed as the issuer publishes them"}; this box's key ${xkey})`);
      },
      () => stopped,
      (err) => log(`opening the fleet's bucket failed: ${err.message} (retrying)`),
    );
  })().catch((err: Error) => log(err.message));

  return {
    xkey,
    async stop() {
      stopped = true;
      clearTimeout(republish);
      clearInterval(retry);
      for (const s of stops.splice(0)) s();
      await queue;
    },
  };
}
