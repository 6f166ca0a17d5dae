/**
 * Every site's certificate, from its source into the running terminator without a restart:
 *   files  — the operator's cert_file/key_file, read again when they change;
 *   local  — made by this box's local CA in cert_dir (made again when 2/3 of its life has passed);
 *   acme   — `<cert_dir>/<site>.pem`, written by the issuer (this box when `[acme] issue = true`, else another box
 *            whose directory reaches this one); a self-signed placeholder is served until the first one exists.
 * A new or changed certificate is checked (parses, key matches, not expired), written to the terminator's copy and
 * swapped in through HAProxy's runtime API: handshakes from then on get it, open connections keep theirs. Anything
 * wrong keeps the certificate in service and shows in the metrics and the log.
 */
import { join } from "node:path";
import { readFileSync, rmSync } from "node:fs";
import { CertDirectory, combinedPem, coversNames, fileStamp, inspectPair, splitPem, writeAtomic, type CertInfo, type CertPair } from "./cert-store.ts";
import type { AcmeIssuer } from "./acme-issuer.ts";
import { replaceCertificate } from "./haproxy-runtime.ts";
import { ensureLocalCa, issueLocalCertificate, placeholderCertificate } from "./local-ca.ts";
import { fetchOcspResponse } from "./ocsp.ts";
import type { FrontDoorObserver } from "./observe.ts";
import type { FrontDoorPlan, SitePlan } from "./plan.ts";
import { nextAttemptAt, renewalReason, shouldAttempt, type AttemptState, type RenewalPolicy } from "./renewal.ts";

const OCSP_REFRESH_MS = 12 * 3600_000;
const OCSP_RETRY_MS = 3600_000;
const LOCAL_RENEW_AT = 2 / 3;

interface Served {
  info: CertInfo;
  pair: CertPair;
  placeholder: boolean;
}

interface SiteState {
  site: SitePlan;
  served?: Served;
  /** Stamp of the source last read, and whether it was refused (so a bad file is reported once). */
  sourceStamp?: string | null;
  attempts: AttemptState;
  issuing?: Promise<CertInfo>;
  ocsp?: { fingerprint: string; at: number; ok: boolean };
  /** When the certificate was last fetched from the issuing box ([acme] fetch_from). */
  fetchedAt?: number;
  /** Whether the running HAProxy loaded this site's file (a site added live is loaded by the reload that adds it). */
  loaded?: boolean;
}

/** A site's certificate as the admin endpoint shows it. */
export interface CertificateStatus {
  site: string;
  source: SitePlan["certificate"];
  names: string[];
  serial?: string;
  not_after?: string;
  placeholder: boolean;
  failures: number;
  next_attempt?: string;
}

export interface CertificateManagerOptions {
  plan: FrontDoorPlan;
  certDir: CertDirectory;
  /** The terminator's own copies (one combined PEM per site, named in its crt-list). */
  runCertDir: string;
  observer: FrontDoorObserver;
  /** Set when this box issues ([acme] issue = true). */
  issuer?: AcmeIssuer;
  /** Set when this box fetches from the issuing box ([acme] fetch_from): GETs a URL, resolves with the body. */
  fetchText?: (url: string) => Promise<string>;
  /** Called after a site's certificate was swapped in the running terminator (HTTP/3's Caddy loads it then). */
  onReplaced?: (site: string) => void;
  /** Called with every ACME certificate put into service (not placeholders): the fleet's publisher on the issuer. */
  onAcmeInstalled?: (site: string, pair: CertPair, info: CertInfo) => void;
  now?: () => number;
}

/** A site's certificate file as the terminators load it (HAProxy's crt-list line, Caddy's tagged file). */
export interface CertEntry {
  id: string;
  file: string;
  names: string[];
}

export class CertificateManager {
  private readonly opts: CertificateManagerOptions;
  private states: SiteState[];
  private readonly now: () => number;
  private runtimeSocket?: string;
  private timer?: NodeJS.Timeout;
  private polling?: Promise<void>;
  /** One issuance at a time for the whole box (the CA's rate limits; logs that read in order). */
  private issueChain: Promise<unknown> = Promise.resolve();

  constructor(opts: CertificateManagerOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => Date.now());
    this.states = opts.plan.sites.map((site) => ({ site, attempts: { failures: 0 } }));
  }

  /** The terminator's file for a site (its name in the crt-list and in runtime API calls). */
  runFile(site: SitePlan): string {
    return join(this.opts.runCertDir, `${site.id}.pem`);
  }

  private get policy(): RenewalPolicy {
    const a = this.opts.plan.acme;
    return { renewAt: a?.renew_at ?? 2 / 3, retryMinMs: (a?.retry_min_seconds ?? 300) * 1000, retryMaxMs: (a?.retry_max_seconds ?? 21_600) * 1000 };
  }

  /** Reads the site's source: the pair and its stamp; the pair is undefined when the source has nothing yet. */
  private readSource(site: SitePlan): { stamp: string | null; pair?: CertPair } {
    if (site.certificate === "files") {
      const stamp = [fileStamp(site.certFile!), fileStamp(site.keyFile!)].join("|");
      const text = `${readFileSync(site.certFile!, "utf8")}\n${readFileSync(site.keyFile!, "utf8")}`;
      return { stamp, pair: splitPem(text) };
    }
    const stamp = this.opts.certDir.stamp(site.id);
    return { stamp, pair: stamp === null ? undefined : this.opts.certDir.read(site.id) };
  }

  /**
   * Before the terminator starts: a usable certificate file per site (the source's, a fresh local one, or a
   * placeholder for an ACME site still without one). Returns the crt-list entries. A "files" site whose files are
   * unusable stops the start with the reason.
   */
  async prepare(): Promise<CertEntry[]> {
    await this.prepareStates(this.states);
    return this.crtEntries();
  }

  /** The crt-list entries of every site (the first is HAProxy's default certificate). */
  crtEntries(): CertEntry[] {
    return this.states.map((s) => ({ id: s.site.id, file: this.runFile(s.site), names: s.site.names }));
  }

  /**
   * A new plan while running (sites added, removed or changed): sites kept keep their state (certificate in service,
   * attempts), new ones get a file (prepare's rules) that the caller's HAProxy reload loads; removed ones are dropped
   * (their files stay until the reload no longer names them). Returns the new crt-list entries.
   */
  async setPlan(plan: FrontDoorPlan, issuer: AcmeIssuer | undefined): Promise<CertEntry[]> {
    const before = new Map(this.states.map((s) => [s.site.id, s]));
    const fresh: SiteState[] = [];
    const kept = new Map<SiteState, SitePlan>();
    const states = plan.sites.map((site) => {
      const old = before.get(site.id);
      if (old && old.site.certificate === site.certificate && old.site.certFile === site.certFile && old.site.keyFile === site.keyFile) {
        kept.set(old, site);
        return old;
      }
      const state: SiteState = { site, attempts: { failures: 0 } };
      fresh.push(state);
      return state;
    });
    // New sites first (a "files" site whose files are unusable throws here): until then nothing changed.
    await this.prepareStates(fresh, "site added");
    for (const [state, site] of kept) state.site = site;
    this.states = states;
    this.opts.plan = plan;
    this.opts.issuer = issuer;
    return this.crtEntries();
  }

  /** After HAProxy (re)loaded the crt-list: every site's file is in the running process. */
  markLoaded(): void {
    for (const s of this.states) s.loaded = true;
  }

  private async prepareStates(states: SiteState[], reason = "start"): Promise<void> {
    for (const state of states) {
      const { site } = state;
      let offered: { pair: CertPair; info: CertInfo; placeholder: boolean; reason: string } | undefined;
      try {
        const { stamp, pair } = this.readSource(site);
        state.sourceStamp = stamp;
        if (pair) {
          const info = inspectPair(pair);
          if (info.notAfter <= this.now()) throw new Error(`the certificate expired on ${new Date(info.notAfter).toISOString()}`);
          offered = { pair, info, placeholder: false, reason };
        }
      } catch (err) {
        if (site.certificate === "files") throw new Error(`sites ${site.id}: ${site.certFile} / ${site.keyFile}: ${(err as Error).message}`);
        this.opts.observer.certificateRefused(site.id, site.certificate, (err as Error).message);
      }
      if (site.certificate === "local" && (!offered || this.localDue(offered.info, site))) {
        offered = { ...(await this.makeLocal(site)), placeholder: false, reason: "local CA" };
        state.sourceStamp = this.opts.certDir.stamp(site.id);
      }
      if (!offered) {
        const pair = await placeholderCertificate(site.names);
        offered = { pair, info: inspectPair(pair), placeholder: true, reason: "placeholder until issued" };
      }
      await this.install(state, offered.pair, offered.info, offered.placeholder, offered.reason);
    }
  }

  private localDue(info: CertInfo, site: SitePlan): boolean {
    return renewalReason({ ...info, coversNames: coversNames(info.names, site.names) }, this.now(), LOCAL_RENEW_AT) !== null;
  }

  private async makeLocal(site: SitePlan): Promise<{ pair: CertPair; info: CertInfo }> {
    const ca = await ensureLocalCa(this.opts.certDir.dir);
    const pair = await issueLocalCertificate(ca, site.names);
    this.opts.certDir.write(site.id, pair);
    const state = this.states.find((s) => s.site === site);
    if (state) state.sourceStamp = this.opts.certDir.stamp(site.id);
    return { pair, info: inspectPair(pair) };
  }

  /** Puts a checked certificate into service: the terminator's file, then (when running) its runtime API. */
  private async install(state: SiteState, pair: CertPair, info: CertInfo, placeholder: boolean, reason: string): Promise<void> {
    const ocsp = placeholder ? undefined : await this.fetchOcsp(state, info, pair);
    await this.load(state, pair, ocsp);
    state.served = { info, pair, placeholder };
    if (!placeholder && !coversNames(info.names, state.site.names)) {
      this.opts.observer.event("certificate-names", { site: state.site.id, names: info.names, missing: state.site.names.filter((n) => !coversNames(info.names, [n])) });
    }
    this.opts.observer.certificateInstalled(state.site.id, placeholder ? "placeholder" : state.site.certificate, info, reason);
    if (!placeholder && state.site.certificate === "acme") this.opts.onAcmeInstalled?.(state.site.id, pair, info);
  }

  /** Writes the terminator's files (certificate, and the OCSP response HAProxy loads beside it) and swaps them in. */
  private async load(state: SiteState, pair: CertPair, ocsp: Uint8Array | undefined): Promise<void> {
    const file = this.runFile(state.site);
    writeAtomic(file, combinedPem(pair));
    if (ocsp) writeAtomic(`${file}.ocsp`, ocsp);
    else rmSync(`${file}.ocsp`, { force: true });
    if (this.runtimeSocket && state.loaded) {
      await replaceCertificate(this.runtimeSocket, file, combinedPem(pair), ocsp);
      this.opts.onReplaced?.(state.site.id);
    }
  }

  /**
   * An OCSP response to staple, when stapling is on and the certificate names a responder (see ocsp.ts); failures
   * are logged and the certificate is served without one (tried again within the hour).
   */
  private async fetchOcsp(state: SiteState, info: CertInfo, pair: CertPair): Promise<Uint8Array | undefined> {
    if (!this.opts.plan.door.ocsp) return undefined;
    const site = state.site.id;
    if (!info.ocspUrl) {
      if (state.ocsp?.fingerprint !== info.fingerprint256) this.opts.observer.event("ocsp", { site, stapled: false, reason: "the certificate names no OCSP responder" });
      state.ocsp = { fingerprint: info.fingerprint256, at: this.now(), ok: true };
      return undefined;
    }
    try {
      const der = await fetchOcspResponse(pair.chainPem, info.ocspUrl);
      state.ocsp = { fingerprint: info.fingerprint256, at: this.now(), ok: true };
      this.opts.observer.event("ocsp", { site, stapled: true, responder: info.ocspUrl });
      return der;
    } catch (err) {
      state.ocsp = { fingerprint: info.fingerprint256, at: this.now(), ok: false };
      this.opts.observer.event("ocsp-failed", { site, responder: info.ocspUrl, error: (err as Error).message });
      return undefined;
    }
  }

  /** Refreshes the stapled OCSP response every 12 hours (every hour after a failure). */
  private async restaple(state: SiteState): Promise<void> {
    const served = state.served;
    if (!this.opts.plan.door.ocsp || !served || served.placeholder || !served.info.ocspUrl) return;
    const last = state.ocsp?.fingerprint === served.info.fingerprint256 ? state.ocsp : undefined;
    if (last && this.now() - last.at < (last.ok ? OCSP_REFRESH_MS : OCSP_RETRY_MS)) return;
    const der = await this.fetchOcsp(state, served.info, served.pair);
    if (der) await this.load(state, served.pair, der);
  }

  /** From now on, certificates are swapped in the running terminator; checks every `intervalMs`. */
  attach(runtimeSocket: string, intervalMs: number): void {
    this.runtimeSocket = runtimeSocket;
    this.markLoaded();
    this.timer = setInterval(() => void this.poll(), intervalMs);
    this.timer.unref();
    void this.poll();
  }

  /** One round: changed sources, local certificates due, ACME certificates due (started in the background), OCSP. */
  poll(): Promise<void> {
    this.polling ??= this.pollOnce().finally(() => (this.polling = undefined));
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    for (const state of this.states) {
      const { site } = state;
      try {
        await this.fetchFromIssuer(state);
        await this.checkSource(state);
        if (site.certificate === "local" && state.served && this.localDue(state.served.info, site)) {
          const made = await this.makeLocal(site);
          await this.install(state, made.pair, made.info, false, "local CA renewal");
        }
        if (site.certificate === "acme" && this.opts.issuer && !state.issuing && shouldAttempt(this.acmeValidity(state), state.attempts, this.now(), this.policy)) {
          void this.issue(state).catch(() => undefined); // reported inside; the old certificate stays
        }
        await this.restaple(state);
      } catch (err) {
        this.opts.observer.event("certificate-error", { site: site.id, error: (err as Error).message });
      }
    }
  }

  private acmeValidity(state: SiteState) {
    const s = state.served;
    if (!s || s.placeholder) return undefined;
    return { notBefore: s.info.notBefore, notAfter: s.info.notAfter, coversNames: coversNames(s.info.names, state.site.names) };
  }

  /**
   * A box that does not issue fetches the issuing box's certificate every fetch_seconds and puts it into its own
   * cert_dir when it is newer than the one in service (checkSource then installs it like any other copy).
   */
  private async fetchFromIssuer(state: SiteState): Promise<void> {
    const acme = this.opts.plan.acme;
    if (state.site.certificate !== "acme" || !acme?.fetch_from || !this.opts.fetchText) return;
    if (state.fetchedAt !== undefined && this.now() - state.fetchedAt < acme.fetch_seconds * 1000) return;
    state.fetchedAt = this.now();
    const url = new URL(`.well-known/cdn/frontdoor/certificate/${state.site.id}`, acme.fetch_from.endsWith("/") ? acme.fetch_from : `${acme.fetch_from}/`);
    try {
      this.adopt(state, splitPem(await this.opts.fetchText(url.toString())));
    } catch (err) {
      this.opts.observer.certificateFetchFailed(state.site.id, url.origin, (err as Error).message);
    }
  }

  /** Writes the issuer's certificate into cert_dir when it is newer than the one in service; whether it did. */
  private adopt(state: SiteState, pair: CertPair): boolean {
    const info = inspectPair(pair);
    const served = state.served && !state.served.placeholder ? state.served.info : undefined;
    if (served && (info.fingerprint256 === served.fingerprint256 || info.notAfter <= served.notAfter)) return false;
    if (info.notAfter <= this.now()) throw new Error(`the issuer's certificate expired on ${new Date(info.notAfter).toISOString()}`);
    this.opts.certDir.write(state.site.id, pair);
    return true;
  }

  /**
   * A certificate the issuing box published through the control plane (src/control/fleet-certs.ts), opened with
   * this box's key: put into service at once when it is newer than the one served. Resolves with whether it was.
   */
  async offerIssued(siteId: string, pair: CertPair): Promise<boolean> {
    const state = this.states.find((s) => s.site.id === siteId && s.site.certificate === "acme");
    if (!state || !this.adopt(state, pair)) return false;
    await this.checkSource(state);
    return true;
  }

  /** Who hears of every ACME certificate put into service from now on (the fleet's publisher, started later). */
  onAcmeInstalled(listener: CertificateManagerOptions["onAcmeInstalled"]): void {
    this.opts.onAcmeInstalled = listener;
  }

  /** The ACME sites this box serves, with the certificate in service (undefined: a placeholder). */
  acmeSites(): { site: string; pair?: CertPair; info?: CertInfo }[] {
    return this.states
      .filter((s) => s.site.certificate === "acme")
      .map((s) => ({ site: s.site.id, ...(s.served && !s.served.placeholder ? { pair: s.served.pair, info: s.served.info } : {}) }));
  }

  /** The certificate in service for a site issued by ACME (chain + key), for the boxes that fetch it. */
  servedPem(siteId: string): string | undefined {
    const state = this.states.find((s) => s.site.id === siteId);
    if (!state?.served || state.served.placeholder || state.site.certificate !== "acme") return undefined;
    return combinedPem(state.served.pair);
  }

  /** Installs the source's certificate when it changed and is usable. */
  private async checkSource(state: SiteState): Promise<void> {
    const { site } = state;
    let read: { stamp: string | null; pair?: CertPair };
    try {
      read = this.readSource(site);
    } catch (err) {
      const stamp = site.certificate === "files" ? `${fileStamp(site.certFile!)}|${fileStamp(site.keyFile!)}` : this.opts.certDir.stamp(site.id);
      if (stamp !== state.sourceStamp) this.opts.observer.certificateRefused(site.id, site.certificate, (err as Error).message);
      state.sourceStamp = stamp;
      return;
    }
    if (read.stamp === state.sourceStamp || !read.pair) {
      state.sourceStamp = read.stamp;
      return;
    }
    state.sourceStamp = read.stamp;
    let info: CertInfo;
    try {
      info = inspectPair(read.pair);
      if (info.notAfter <= this.now()) throw new Error(`the certificate expired on ${new Date(info.notAfter).toISOString()}`);
    } catch (err) {
      this.opts.observer.certificateRefused(site.id, site.certificate, (err as Error).message);
      return;
    }
    if (state.served?.info.fingerprint256 === info.fingerprint256) return;
    // Another issuer's copy older than what is served (a stale sync) does not replace it.
    if (state.served && !state.served.placeholder && site.certificate === "acme" && info.notAfter < state.served.info.notAfter) return;
    await this.install(state, read.pair, info, false, "changed");
  }

  /** Issues the site's certificate now (queued behind any other issuance), writes it to cert_dir and serves it. */
  private issue(state: SiteState, reason?: string): Promise<CertInfo> {
    const issuer = this.opts.issuer!;
    const why = reason ?? renewalReason(this.acmeValidity(state), this.now(), this.policy.renewAt) ?? "requested";
    const run = async (): Promise<CertInfo> => {
      const started = this.now();
      try {
        const pair = await issuer.issue(state.site);
        const info = inspectPair(pair);
        this.opts.certDir.write(state.site.id, pair);
        state.sourceStamp = this.opts.certDir.stamp(state.site.id);
        state.attempts = { failures: 0, lastAttempt: this.now() };
        this.opts.observer.acmeIssued(state.site.id, why, this.now() - started);
        await this.install(state, pair, info, false, `acme ${why}`);
        return info;
      } catch (err) {
        state.attempts = { failures: state.attempts.failures + 1, lastAttempt: this.now() };
        this.opts.observer.acmeFailed(state.site.id, why, (err as Error).message, nextAttemptAt(state.attempts, this.policy));
        throw err;
      }
    };
    const p = this.issueChain.then(run, run);
    state.issuing = p.finally(() => (state.issuing = undefined));
    this.issueChain = state.issuing.catch(() => undefined);
    return p;
  }

  /**
   * The operator's "renew now": ACME sites are issued again (when this box issues), local ones made again, files
   * read again. Resolves with the certificate in service afterwards.
   */
  async renew(siteId: string): Promise<CertInfo> {
    const state = this.states.find((s) => s.site.id === siteId);
    if (!state) throw new Error(`no site ${siteId}`);
    const { site } = state;
    if (site.certificate === "acme") {
      if (!this.opts.issuer) throw new Error("this box does not issue certificates ([acme] issue = false): renew on the issuing box");
      return state.issuing ?? this.issue(state, "requested");
    }
    if (site.certificate === "local") {
      const made = await this.makeLocal(site);
      await this.install(state, made.pair, made.info, false, "requested");
      return made.info;
    }
    state.sourceStamp = undefined;
    await this.checkSource(state);
    return state.served!.info;
  }

  /** Every site's certificate, for the admin endpoint. */
  status(): CertificateStatus[] {
    return this.states.map((s) => {
      const next = nextAttemptAt(s.attempts, this.policy);
      return {
        site: s.site.id,
        source: s.site.certificate,
        names: s.site.names,
        serial: s.served?.info.serial,
        not_after: s.served ? new Date(s.served.info.notAfter).toISOString() : undefined,
        placeholder: s.served?.placeholder ?? false,
        failures: s.attempts.failures,
        next_attempt: s.attempts.failures ? new Date(next).toISOString() : undefined,
      };
    });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
