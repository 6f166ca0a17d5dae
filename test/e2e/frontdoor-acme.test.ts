/**
 * Certificates by ACME DNS-01, end to end with real parts: pebble (the test CA) sends its DNS-01 lookups to a real
 * DNS node of the project (started by the test), which serves the TXT records the edge box's issuer publishes
 * through the node's authenticated /admin/acme-challenge. Two sites get two certificates (checked over SNI with
 * openssl s_client, HTTP/2 with curl), a renewal replaces one while a long download continues, and a failed
 * renewal keeps the old certificate and shows in the metrics and the log.
 */
import { X509Certificate, createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { curlHttps, downloadStarted, presentedCertificate, run, sleep, startEdgeBox, type EdgeBox } from "../support/frontdoor.ts";
import { startAcmeCa, type AcmeCa } from "../support/pebble.ts";
import { pattern, ScriptedOrigin } from "../support/scripted-origin.ts";

const TOKEN = "acme-test-admin-token-0123";
const BIG = 16 * 1024 * 1024;
const origin = new ScriptedOrigin();
let acme: AcmeCa;
let box: EdgeBox;

/** Waits (bounded) until the box logged an event matching `match`. */
async function waitEvent(match: (e: Record<string, unknown>) => boolean, ms = 60_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = box.events().find(match);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no such event within ${ms} ms:\n${box.running.output().slice(-4000)}`);
    await sleep(200);
  }
}

beforeAll(async () => {
  origin.set("/page", { headers: { "content-type": "text/html", "cache-control": "max-age=600" }, body: "<p>hello</p>\n" });
  origin.set("/big", { headers: { "content-type": "application/octet-stream", "cache-control": "max-age=600" }, size: BIG });
  acme = await startAcmeCa(TOKEN);
  box = await startEdgeBox(
    `
[admin]
token = "${TOKEN}"
[frontdoor]
cert_dir = "{dir}/certs"
poll_seconds = 1
${acme.acmeToml('zone = "geo.example.org"')}[[sites]]
names = ["one.geo.example.org"]
[[sites]]
names = ["two.geo.example.org", "*.two.geo.example.org"]
`,
    { origin: origin.handle },
  );
  // Both certificates arrive without a restart (placeholders meanwhile).
  await waitEvent((e) => e.event === "acme-issued" && e.site === "one.geo.example.org");
  await waitEvent((e) => e.event === "acme-issued" && e.site === "two.geo.example.org");
}, 180_000);

afterAll(async () => {
  await box?.stop();
  await acme?.stop();
});

describe("certificates by ACME DNS-01 through the project's DNS node", () => {
  it("gives each site its own certificate from the CA, chosen by SNI", async () => {
    const one = await presentedCertificate(box.httpsPort, "one.geo.example.org");
    const two = await presentedCertificate(box.httpsPort, "two.geo.example.org");
    const wild = await presentedCertificate(box.httpsPort, "x.two.geo.example.org");
    expect(one.issuer).toMatch(/Pebble Intermediate CA/);
    expect(one.subjectAltName).toBe("DNS:one.geo.example.org");
    expect(two.subjectAltName).toBe("DNS:two.geo.example.org, DNS:*.two.geo.example.org");
    expect(wild.serialNumber).toBe(two.serialNumber);
    expect(one.serialNumber).not.toBe(two.serialNumber);
    // The shared directory holds them for every box that serves these names.
    const stored = new X509Certificate(readFileSync(join(box.dir, "certs", "one.geo.example.org.pem")));
    expect(stored.serialNumber).toBe(one.serialNumber);
  });

  it("serves HTTP/2 with the CA's chain (curl --http2, trusting only pebble's root)", async () => {
    for (const name of ["one.geo.example.org", "two.geo.example.org"]) {
      const r = await curlHttps(box, name, "/page", acme.rootPath, ["--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}"]);
      expect(r.err).toBe("");
      expect(r.out).toBe("2 200");
    }
  });

  it("removes the challenge TXT records from the DNS node after validation", async () => {
    const txt = await run("dig", ["+short", "-p", String(acme.dns.dnsPort), "@127.0.0.1", "TXT", "_acme-challenge.one.geo.example.org"]);
    expect(txt.code).toBe(0);
    expect(txt.out.trim()).toBe("");
  });

  it("renews a certificate while a long download continues", async () => {
    await curlHttps(box, "one.geo.example.org", "/big", acme.rootPath, ["-o", "/dev/null"]);
    const before = await presentedCertificate(box.httpsPort, "one.geo.example.org");
    const file = join(box.dir, "big.bin");
    const download = curlHttps(box, "one.geo.example.org", "/big", acme.rootPath, [
      "--http2", "--limit-rate", "2M", "-o", file, "-w", "%{http_code} %{size_download}",
    ]);
    await downloadStarted(file);
    const renew = await curlHttps(box, "one.geo.example.org", "/.well-known/cdn/frontdoor/renew", acme.rootPath, [
      "-X", "POST", "-H", `Authorization: Bearer ${TOKEN}`, "-d", '{"site":"one.geo.example.org"}',
    ]);
    expect(JSON.parse(renew.out)).toMatchObject({ site: "one.geo.example.org", names: ["one.geo.example.org"] });
    const after = await presentedCertificate(box.httpsPort, "one.geo.example.org");
    expect(after.serialNumber).not.toBe(before.serialNumber);
    expect(after.issuer).toMatch(/Pebble Intermediate CA/);
    expect((await download).out).toBe(`200 ${BIG}`);
    expect(createHash("sha256").update(readFileSync(file)).digest("hex")).toBe(createHash("sha256").update(pattern(BIG)).digest("hex"));
  }, 90_000);

  it("keeps the old certificate when a renewal fails, and says so in the metrics and the log", async () => {
    const before = await presentedCertificate(box.httpsPort, "two.geo.example.org");
    await acme.dns.stop(); // the DNS node is gone: the challenge cannot be published
    const renew = await curlHttps(box, "two.geo.example.org", "/.well-known/cdn/frontdoor/renew", acme.rootPath, [
      "-X", "POST", "-H", `Authorization: Bearer ${TOKEN}`, "-d", '{"site":"two.geo.example.org"}', "-w", "\n%{http_code}",
    ]);
    expect(renew.out).toMatch(/DNS node http:\/\/127\.0\.0\.1:\d+: POST acme-challenge failed[\s\S]*\n502$/);
    const failed = await waitEvent((e) => e.event === "acme-failed" && e.site === "two.geo.example.org");
    expect(failed.error).toMatch(/acme-challenge failed/);
    expect((await presentedCertificate(box.httpsPort, "two.geo.example.org")).serialNumber).toBe(before.serialNumber);
    const m = await curlHttps(box, "two.geo.example.org", "/.well-known/cdn/frontdoor/metrics", acme.rootPath, ["-H", `Authorization: Bearer ${TOKEN}`]);
    expect(m.out).toMatch(/^parrot_frontdoor_acme_failures_total\{site="two\.geo\.example\.org"\} [1-9]\d*$/m);
    expect(m.out).toMatch(/^parrot_frontdoor_cert_expiry_seconds\{site="two\.geo\.example\.org"\} (\d+)$/m);
    const expiry = Number(/^parrot_frontdoor_cert_expiry_seconds\{site="two\.geo\.example\.org"\} (\d+)$/m.exec(m.out)![1]);
    expect(expiry * 1000).toBe(Date.parse(before.validTo));
  }, 60_000);
});
