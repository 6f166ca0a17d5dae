/**
 * OCSP stapling: HAProxy 2.6 staples a response it is given but does not fetch one itself, so the front door asks
 * the responder a certificate names (with `openssl ocsp`) and hands the answer to HAProxy. A certificate without a
 * responder URL gets nothing stapled: pebble names none, and Let's Encrypt stopped including one in 2025.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chainCertificates } from "./cert-store.ts";

/** Fetches a DER OCSP response for the chain's leaf from `url`; throws unless the responder says "good". */
export async function fetchOcspResponse(chainPem: string, url: string, timeoutSeconds = 10): Promise<Uint8Array> {
  const [leaf, issuer] = chainCertificates(chainPem);
  if (!leaf || !issuer) throw new Error("OCSP needs the issuer's certificate in the chain");
  const work = mkdtempSync(join(tmpdir(), "parrot-ocsp-"));
  try {
    writeFileSync(join(work, "leaf.pem"), leaf);
    writeFileSync(join(work, "issuer.pem"), issuer);
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        "openssl",
        ["ocsp", "-issuer", join(work, "issuer.pem"), "-cert", join(work, "leaf.pem"), "-url", url, "-respout", join(work, "resp.der"),
          "-noverify", "-timeout", String(timeoutSeconds)],
        { timeout: (timeoutSeconds + 5) * 1000 },
        (err, stdout, stderr) => (err ? reject(new Error(`openssl ocsp: ${(stderr || err.message).trim()}`)) : resolve(stdout)),
      );
    });
    const status = /leaf\.pem: (\w+)/.exec(out)?.[1];
    if (status !== "good") throw new Error(`the OCSP responder says ${status ?? "nothing usable"} for the certificate`);
    return new Uint8Array(readFileSync(join(work, "resp.der")));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
