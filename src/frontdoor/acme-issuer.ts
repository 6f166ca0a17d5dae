/**
 * Issuing a site's certificate from an ACME CA by DNS-01, with the maintained `acme-client` library doing the
 * protocol (account, order, authorizations, finalize, download). Our part is the challenge: each name's TXT goes to
 * every DNS node of the zone (ChallengePublisher), and the CA is told to look only once every node answers it. The
 * library's own pre-check is off: it would ask the system resolver, i.e. the public DNS, which an edge box must not
 * depend on.
 */
import { createHash } from "node:crypto";
import { Agent } from "node:https";
import { rootCertificates } from "node:tls";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as acme from "acme-client";
import { writeAtomic, splitPem, type CertPair } from "./cert-store.ts";
import type { ChallengePublisher } from "./dns-challenge.ts";
import type { AcmePlan, SitePlan } from "./plan.ts";

export interface IssuerOptions {
  acme: AcmePlan;
  /** Where the account key lives (`<cert_dir>/acme/`). */
  stateDir: string;
  publisher: ChallengePublisher;
  /** Extra trusted CA certificates (PEM), e.g. pebble's, for the directory's HTTPS. */
  caBundlePem?: string;
  log?: (event: Record<string, unknown>) => void;
}

/** Issues certificates for sites; one account per directory URL, kept on disk. */
export class AcmeIssuer {
  private readonly opts: IssuerOptions;
  private client?: acme.Client;

  constructor(opts: IssuerOptions) {
    this.opts = opts;
    if (opts.caBundlePem) {
      // acme-client's own axios instance: only its requests trust the extra CA.
      acme.axios.defaults.httpsAgent = new Agent({ ca: [...rootCertificates, opts.caBundlePem], keepAlive: true });
    }
  }

  private async accountClient(): Promise<acme.Client> {
    if (this.client) return this.client;
    const dir = join(this.opts.stateDir, "acme");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const id = createHash("sha256").update(this.opts.acme.directory).digest("hex").slice(0, 16);
    const keyPath = join(dir, `account-${id}.key`);
    let accountKey: string;
    if (existsSync(keyPath)) accountKey = readFileSync(keyPath, "utf8");
    else {
      accountKey = (await acme.crypto.createPrivateEcdsaKey()).toString();
      writeAtomic(keyPath, accountKey);
    }
    this.client = new acme.Client({ directoryUrl: this.opts.acme.directory, accountKey, backoffAttempts: 10, backoffMin: 500, backoffMax: 10_000 });
    return this.client;
  }

  private async newKey(): Promise<string> {
    switch (this.opts.acme.key_type) {
      case "ecdsa-p384":
        return (await acme.crypto.createPrivateEcdsaKey("P-384")).toString();
      case "rsa-2048":
        return (await acme.crypto.createPrivateRsaKey(2048)).toString();
      default:
        return (await acme.crypto.createPrivateEcdsaKey("P-256")).toString();
    }
  }

  /** Orders, validates and downloads a certificate for every name of the site (a new key each time). */
  async issue(site: SitePlan): Promise<CertPair> {
    const client = await this.accountClient();
    const keyPem = await this.newKey();
    const commonName = site.names[0]!.length <= 64 ? site.names[0] : undefined;
    const [, csr] = await acme.crypto.createCsr({ commonName, altNames: site.names }, keyPem);
    const recordFor = (authz: acme.Authorization) => {
      const name = authz.wildcard ? `*.${authz.identifier.value}` : authz.identifier.value;
      const plan = site.challenges.find((c) => c.name === name.toLowerCase());
      if (!plan) throw new Error(`the CA asked about ${name}, which site ${site.id} does not name`);
      return plan.record;
    };
    const { publisher, acme: config } = this.opts;
    const chainPem = await client.auto({
      csr,
      email: config.email,
      termsOfServiceAgreed: true,
      challengePriority: ["dns-01"],
      skipChallengeVerification: true,
      challengeCreateFn: async (authz, challenge, value) => {
        if (challenge.type !== "dns-01") throw new Error(`the CA offers no dns-01 challenge for ${authz.identifier.value}`);
        const record = recordFor(authz);
        this.opts.log?.({ event: "acme-challenge", site: site.id, name: authz.identifier.value, record });
        await publisher.publish(record, value);
        await publisher.waitVisible(record, value, config.propagation_timeout_seconds * 1000);
      },
      challengeRemoveFn: async (authz, _challenge, value) => {
        const errors = await publisher.remove(recordFor(authz), value);
        for (const error of errors) this.opts.log?.({ event: "acme-challenge-cleanup-failed", site: site.id, error });
      },
    });
    return { chainPem: splitPem(`${chainPem}\n${keyPem}`).chainPem, keyPem };
  }
}
