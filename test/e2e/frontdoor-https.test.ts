/**
 * The front door as a real process (HAProxy in front of the edge's workerd, started by `scripts/edge.ts` from
 * [[sites]]), checked with real clients: openssl s_client (a certificate per name by SNI), curl (HTTP/2, redirects,
 * HSTS, a long download across a certificate renewal and a reload), and the edge's own view of the client.
 */
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueLocalCertificate, placeholderCertificate } from "../../src/frontdoor/local-ca.ts";
import { combinedPem } from "../../src/frontdoor/cert-store.ts";
import { curlHttps, downloadStarted, presentedCertificate, run, sleep, startEdgeBox, type EdgeBox } from "../support/frontdoor.ts";
import { pattern, ScriptedOrigin } from "../support/scripted-origin.ts";

const TOKEN = "frontdoor-test-token-0123";
const BIG = 24 * 1024 * 1024;
const origin = new ScriptedOrigin();
let box: EdgeBox;
let ca: string;

beforeAll(async () => {
  origin.set("/page", { headers: { "content-type": "text/html", "cache-control": "max-age=600" }, body: "<!doctype html><p>hello</p>\n" });
  origin.set("/dists/parrot/InRelease", { headers: { "content-type": "text/plain", "cache-control": "max-age=600" }, body: "Suite: parrot\n" });
  origin.set("/big", { headers: { "content-type": "application/octet-stream", "cache-control": "max-age=600" }, size: BIG });
  origin.set("/page?ae", { headers: { "content-type": "text/html" }, body: "x" });
  // The "files" site's certificate: the operator's own (here self-signed, so it differs from the local CA's).
  const dir = mkdtempSync(join(tmpdir(), "parrot-fd-https-"));
  const own = await placeholderCertificate(["b.fd.test"]);
  writeFileSync(join(dir, "b.crt"), own.chainPem);
  writeFileSync(join(dir, "b.key"), own.keyPem);
  box = await startEdgeBox(
    `
# The access log must name 127.0.0.11, not the front door's 127.0.0.1: both are in 127.0.0.0/24.
[privacy]
client_addresses = "full"
[admin]
token = "${TOKEN}"
[frontdoor]
cert_dir = "{dir}/certs"
poll_seconds = 1
[[sites]]
names = ["a.fd.test", "www.a.fd.test"]
certificate = "local"
http_paths = ["/dists/"]
hsts = { max_age = 600, include_subdomains = true }
[[sites]]
names = ["b.fd.test"]
certificate = "files"
cert_file = "{dir}/b.crt"
key_file = "{dir}/b.key"
http = "serve"
`,
    { origin: origin.handle, dir },
  );
  ca = join(box.dir, "certs", "local-ca.pem");
}, 120_000);

afterAll(async () => {
  await box?.stop();
  if (box) rmSync(box.dir, { recursive: true, force: true });
});

describe("TLS for every site", () => {
  it("presents each name its own certificate over SNI", async () => {
    const a = await presentedCertificate(box.httpsPort, "a.fd.test");
    const www = await presentedCertificate(box.httpsPort, "www.a.fd.test");
    const b = await presentedCertificate(box.httpsPort, "b.fd.test");
    expect(a.subjectAltName).toBe("DNS:a.fd.test, DNS:www.a.fd.test");
    expect(a.issuer).toMatch(/parrot-cdn local CA/);
    expect(www.serialNumber).toBe(a.serialNumber);
    expect(b.subjectAltName).toBe("DNS:b.fd.test");
    expect(b.fingerprint256).toBe(new X509Certificate(readFileSync(join(box.dir, "b.crt"))).fingerprint256);
    expect(b.serialNumber).not.toBe(a.serialNumber);
  });

  it("negotiates HTTP/2 (curl --http2), with HSTS only where the site asks for it", async () => {
    const a = await curlHttps(box, "a.fd.test", "/page", ca, ["--http2", "-D", "-", "-o", "/dev/null", "-w", "version=%{http_version}\n"]);
    expect(a.code).toBe(0);
    expect(a.out).toMatch(/^HTTP\/2 200/);
    expect(a.out).toContain("version=2");
    expect(a.out).toMatch(/^strict-transport-security: max-age=600; includeSubDomains\r?$/m);
    const b = await run("curl", ["-sS", "-k", "--http2", "-D", "-", "-o", "/dev/null", "--resolve", `b.fd.test:${box.httpsPort}:127.0.0.1`, `https://b.fd.test:${box.httpsPort}/page`]);
    expect(b.out).toMatch(/^HTTP\/2 200/);
    expect(b.out).not.toMatch(/strict-transport-security/i);
    // HTTP/1.1 clients are served too.
    const h1 = await curlHttps(box, "a.fd.test", "/page", ca, ["--http1.1", "-o", "/dev/null", "-w", "%{http_version} %{http_code}"]);
    expect(h1.out).toBe("1.1 200");
  });

  it("redirects plain HTTP to HTTPS per site, except the paths that must stay (apt) and the CDN's endpoints", async () => {
    const get = (host: string, path: string) =>
      run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", `Host: ${host}`, `http://127.0.0.1:${box.httpPort}${path}`]);
    expect((await get("a.fd.test", "/page?x=1")).out).toBe(`301 https://a.fd.test:${box.httpsPort}/page?x=1`);
    expect((await get("www.a.fd.test", "/page")).out).toBe(`301 https://www.a.fd.test:${box.httpsPort}/page`);
    expect((await get("a.fd.test", "/dists/parrot/InRelease")).out).toBe("200 ");
    expect((await get("a.fd.test", "/.well-known/cdn/health")).out).toBe("200 ");
    expect((await get("b.fd.test", "/page")).out).toBe("200 ");
    // A redirect carries no HSTS (only HTTPS answers do).
    const head = await run("curl", ["-sS", "-D", "-", "-o", "/dev/null", "-H", "Host: a.fd.test", `http://127.0.0.1:${box.httpPort}/page`]);
    expect(head.out).not.toMatch(/strict-transport-security/i);
  });

  it("lets the edge and the origin see the real client, whatever X-Forwarded-For the client sends", async () => {
    const trace = await curlHttps(box, "a.fd.test", "/.well-known/cdn/trace", ca, ["--interface", "127.0.0.10", "-H", "X-Forwarded-For: 203.0.113.9"]);
    expect(trace.out).toMatch(/^ip=127\.0\.0\.10$/m);
    expect(trace.out).toMatch(/^scheme=https$/m);
    await curlHttps(box, "a.fd.test", "/who?1", ca, ["--interface", "127.0.0.11", "-H", "X-Forwarded-For: 203.0.113.9, 10.0.0.1", "-o", "/dev/null"]);
    expect(origin.lastRequest("/who?1")).toMatchObject({ "x-forwarded-for": "127.0.0.11", "x-forwarded-proto": "https" });
    // The edge's access log line is written as the answer ends: wait for it (bounded).
    const line = () => box.events().find((e) => e.path === "/who?1" && e.source === undefined);
    for (let i = 0; i < 40 && !line(); i++) await sleep(100);
    expect(line()).toMatchObject({ client: "127.0.0.11" });
    // Straight to workerd, a forged header from a non-loopback-proxy peer is not believed either (it is from
    // 127.0.0.1 here, the front door's own address: workerd listens on loopback only, for this reason).
    expect(box.workerdUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it("passes bodies and Accept-Encoding untouched: the same bytes and headers as workerd itself sends", async () => {
    const direct = await run("curl", ["-sS", "-H", "Host: a.fd.test", "-H", "Accept-Encoding: gzip, br", "-D", "-", "-o", join(box.dir, "direct.bin"), `${box.workerdUrl}/page`]);
    const viaDoor = await curlHttps(box, "a.fd.test", "/page", ca, ["-H", "Accept-Encoding: gzip, br", "-D", "-", "-o", join(box.dir, "door.bin")]);
    const sum = (f: string) => createHash("sha256").update(readFileSync(join(box.dir, f))).digest("hex");
    expect(sum("door.bin")).toBe(sum("direct.bin"));
    const header = (h: string, name: string) => new RegExp(`^${name}: (.*)$`, "im").exec(h)?.[1]?.trim();
    for (const name of ["content-encoding", "content-length", "content-type", "etag"]) expect(header(viaDoor.out, name)).toBe(header(direct.out, name));
    await curlHttps(box, "a.fd.test", "/page?ae", ca, ["-H", "Accept-Encoding: br;q=1, gzip;q=0.5", "-o", "/dev/null"]);
    expect(origin.lastRequest("/page?ae")?.["accept-encoding"]).toBeDefined();
  });
});

describe("certificate changes without dropping connections", () => {
  it("renews a certificate and reloads HAProxy while a long download continues", async () => {
    await curlHttps(box, "a.fd.test", "/big", ca, ["-o", "/dev/null"]); // stored at the edge
    const before = await presentedCertificate(box.httpsPort, "a.fd.test");
    const file = join(box.dir, "big.bin");
    const download = curlHttps(box, "a.fd.test", "/big", ca, ["--http2", "--limit-rate", "3M", "-o", file, "-w", "%{http_code} %{size_download} %{http_version}"]);
    await downloadStarted(file);
    const renewed = await curlHttps(box, "a.fd.test", "/.well-known/cdn/frontdoor/renew", ca, [
      "-X", "POST", "-H", `Authorization: Bearer ${TOKEN}`, "-d", '{"site":"a.fd.test"}',
    ]);
    const answer = JSON.parse(renewed.out) as { serial: string };
    const after = await presentedCertificate(box.httpsPort, "a.fd.test");
    expect(after.serialNumber.toLowerCase()).toBe(answer.serial);
    expect(after.serialNumber).not.toBe(before.serialNumber);
    // A reload too (a new HAProxy worker; the old one finishes the download).
    const pid = Number(readFileSync(join(box.dir, "store/.run/frontdoor/haproxy.pid"), "utf8"));
    process.kill(pid, "SIGUSR2");
    await sleep(1000);
    expect((await curlHttps(box, "a.fd.test", "/page", ca, ["-o", "/dev/null", "-w", "%{http_code}"])).out).toBe("200");
    const done = await download;
    expect(done.out).toBe(`200 ${BIG} 2`);
    expect(createHash("sha256").update(readFileSync(file)).digest("hex")).toBe(createHash("sha256").update(pattern(BIG)).digest("hex"));
    expect(box.events().some((e) => e.event === "certificate" && e.site === "a.fd.test" && e.reason === "requested")).toBe(true);
  }, 60_000);

  it("serves a certificate another box wrote into the shared directory, and refuses a broken one", async () => {
    const localCa = { certPath: ca, keyPath: join(box.dir, "certs", "local-ca.key") };
    const pair = await issueLocalCertificate(localCa, ["a.fd.test", "www.a.fd.test"], 30);
    const target = join(box.dir, "certs", "a.fd.test.pem");
    writeFileSync(target + ".tmp", combinedPem(pair));
    renameSync(target + ".tmp", target);
    const expected = new X509Certificate(pair.chainPem).serialNumber;
    let seen = "";
    for (let i = 0; i < 40 && seen !== expected; i++) {
      await sleep(250);
      seen = (await presentedCertificate(box.httpsPort, "a.fd.test")).serialNumber;
    }
    expect(seen).toBe(expected);
    // A file whose key belongs to another certificate: refused, the one in service stays.
    const other = await placeholderCertificate(["a.fd.test"]);
    writeFileSync(target, `${pair.chainPem}${other.keyPem}`);
    for (let i = 0; i < 40 && !box.events().some((e) => e.event === "certificate-refused"); i++) await sleep(250);
    expect(box.events().find((e) => e.event === "certificate-refused")).toMatchObject({
      site: "a.fd.test",
      error: "the private key does not belong to the certificate",
    });
    expect((await presentedCertificate(box.httpsPort, "a.fd.test")).serialNumber).toBe(expected);
  });

  it("shows every certificate's expiry in the metrics", async () => {
    const m = await curlHttps(box, "a.fd.test", "/.well-known/cdn/frontdoor/metrics", ca, ["-H", `Authorization: Bearer ${TOKEN}`]);
    expect(m.out).toMatch(/^parrot_frontdoor_cert_expiry_seconds\{site="a\.fd\.test"\} \d{10}$/m);
    expect(m.out).toMatch(/^parrot_frontdoor_cert_expiry_seconds\{site="b\.fd\.test"\} \d{10}$/m);
    expect(m.out).toMatch(/^parrot_frontdoor_cert_refused_total\{site="a\.fd\.test"\} 1$/m);
    const denied = await curlHttps(box, "a.fd.test", "/.well-known/cdn/frontdoor/metrics", ca, ["-o", "/dev/null", "-w", "%{http_code}"]);
    expect(denied.out).toBe("401");
  });
});

describe("supervision", () => {
  it("starts HAProxy again when it dies, with the certificates in service", async () => {
    const serial = (await presentedCertificate(box.httpsPort, "a.fd.test")).serialNumber;
    const pidFile = join(box.dir, "store/.run/frontdoor/haproxy.pid");
    const pid = Number(readFileSync(pidFile, "utf8"));
    process.kill(pid, "SIGKILL");
    let code = "";
    for (let i = 0; i < 60 && !(code === "200" && Number(readFileSync(pidFile, "utf8")) !== pid); i++) {
      await sleep(250);
      code = (await curlHttps(box, "a.fd.test", "/page", ca, ["-o", "/dev/null", "-w", "%{http_code}"])).out;
    }
    expect(code).toBe("200");
    expect(Number(readFileSync(pidFile, "utf8"))).not.toBe(pid);
    expect((await presentedCertificate(box.httpsPort, "a.fd.test")).serialNumber).toBe(serial);
    const m = await curlHttps(box, "a.fd.test", "/.well-known/cdn/frontdoor/metrics", ca, ["-H", `Authorization: Bearer ${TOKEN}`]);
    expect(m.out).toMatch(/^parrot_frontdoor_terminator_restarts_total 1$/m);
  }, 30_000);
});

describe("sites changed by a reload (SIGHUP)", () => {
  it("serves a site added to the file, with the same edge and HAProxy master, and stops serving it once removed", async () => {
    const file = join(box.dir, "cdn.toml");
    const before = readFileSync(file, "utf8");
    const master = Number(readFileSync(join(box.dir, "store/.run/frontdoor/haproxy.pid"), "utf8"));
    const sans = async () => (await presentedCertificate(box.httpsPort, "c.fd.test")).subjectAltName;
    const waitSans = async (want: string) => {
      let seen = "";
      for (const deadline = Date.now() + 20_000; Date.now() < deadline && seen !== want; ) {
        seen = (await sans()) ?? "";
        if (seen !== want) await sleep(250);
      }
      return seen;
    };
    expect(await sans()).toBe("DNS:a.fd.test, DNS:www.a.fd.test"); // the default certificate: no such site yet
    writeFileSync(file, `${before}\n[[sites]]\nnames = ["c.fd.test"]\ncertificate = "local"\nhttp = "serve"\n`);
    process.kill(box.running.proc.pid!, "SIGHUP");
    expect(await waitSans("DNS:c.fd.test")).toBe("DNS:c.fd.test");
    const page = await curlHttps(box, "c.fd.test", "/page", ca, ["-w", " %{http_code}"]);
    expect(page.out).toMatch(/hello<\/p>\n 200$/);
    expect(box.running.output()).toMatch(/edge reload: the front door's sites reconfigured \(a\.fd\.test, b\.fd\.test, c\.fd\.test\)/);
    writeFileSync(file, before);
    process.kill(box.running.proc.pid!, "SIGHUP");
    expect(await waitSans("DNS:a.fd.test, DNS:www.a.fd.test")).toBe("DNS:a.fd.test, DNS:www.a.fd.test");
    expect(Number(readFileSync(join(box.dir, "store/.run/frontdoor/haproxy.pid"), "utf8"))).toBe(master);
    expect(box.running.output().match(/edge ready/g)).toHaveLength(1);
  }, 60_000);
});
