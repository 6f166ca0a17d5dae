/**
 * Certificates reach every edge that serves the name, with one issuer per fleet (the CA's duplicate-certificate
 * limits): box A holds the ACME site's certificate (as its issuer wrote it into cert_dir), box B does not issue and
 * fetches it from A's front door with the fleet's admin token; a renewal on A reaches B without a restart.
 */
import { X509Certificate } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CertDirectory } from "../../src/frontdoor/cert-store.ts";
import { ensureLocalCa, issueLocalCertificate } from "../../src/frontdoor/local-ca.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { presentedCertificate, sleep, startEdgeBox, type EdgeBox } from "../support/frontdoor.ts";
import { ScriptedOrigin } from "../support/scripted-origin.ts";

const TOKEN = "fleet-admin-token-0123456";
const origin = new ScriptedOrigin();
let served: Served;
let a: EdgeBox;
let b: EdgeBox;

const ACME = (extra: string) => `
[admin]
token = "${TOKEN}"
[frontdoor]
cert_dir = "{dir}/certs"
poll_seconds = 1
[acme]
zone = "fd.test"
issue = false
dns_nodes = [ { url = "http://127.0.0.1:9", dns = "127.0.0.1:9" } ]
${extra}
[[sites]]
names = ["f.fd.test"]
`;

/** Waits (bounded) until `box` presents the certificate with this serial for f.fd.test. */
async function waitSerial(box: EdgeBox, serial: string, ms = 40_000): Promise<string> {
  let seen = "";
  for (const deadline = Date.now() + ms; Date.now() < deadline && seen !== serial; ) {
    seen = (await presentedCertificate(box.httpsPort, "f.fd.test")).serialNumber;
    if (seen !== serial) await sleep(500);
  }
  return seen;
}

beforeAll(async () => {
  served = await serveFetch(origin.handle);
  a = await startEdgeBox(ACME(""), { origin: served.url });
  b = await startEdgeBox(ACME(`fetch_from = "http://127.0.0.1:${a.httpPort}"\nfetch_seconds = 10`), { origin: served.url });
}, 120_000);

afterAll(async () => {
  await b?.stop();
  await a?.stop();
  await served?.close();
});

describe("one issuer per fleet", () => {
  it("serves placeholders until a certificate exists, then the issuer's certificate on every box", async () => {
    expect((await presentedCertificate(b.httpsPort, "f.fd.test")).issuer).toMatch(/parrot-cdn placeholder/);
    // A's issuer writes the certificate into A's cert_dir (here a test CA stands in for the ACME CA).
    const ca = await ensureLocalCa(join(a.dir, "test-ca"));
    const first = await issueLocalCertificate(ca, ["f.fd.test"], 30);
    new CertDirectory(join(a.dir, "certs")).write("f.fd.test", first);
    const serial = new X509Certificate(first.chainPem).serialNumber;
    expect(await waitSerial(a, serial)).toBe(serial);
    expect(await waitSerial(b, serial)).toBe(serial);
    expect(b.events().find((e) => e.event === "certificate" && e.serial === serial.toLowerCase())).toMatchObject({ site: "f.fd.test", reason: "changed" });

    // A renewal on the issuer reaches the other box within fetch_seconds.
    const second = await issueLocalCertificate(ca, ["f.fd.test"], 60);
    new CertDirectory(join(a.dir, "certs")).write("f.fd.test", second);
    const next = new X509Certificate(second.chainPem).serialNumber;
    expect(await waitSerial(a, next)).toBe(next);
    expect(await waitSerial(b, next, 40_000)).toBe(next);
  }, 100_000);

  it("hands the certificate only to holders of the admin token", async () => {
    const denied = await fetch(`http://127.0.0.1:${a.httpPort}/.well-known/cdn/frontdoor/certificate/f.fd.test`);
    expect(denied.status).toBe(401);
    const given = await fetch(`http://127.0.0.1:${a.httpPort}/.well-known/cdn/frontdoor/certificate/f.fd.test`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(given.status).toBe(200);
    expect(await given.text()).toMatch(/-----BEGIN CERTIFICATE-----[\s\S]+PRIVATE KEY-----/);
  });
});
