/**
 * HTTP/3 through the front door: Caddy (Debian's, quic-go) beside HAProxy, started by `scripts/edge.ts` from
 * `[frontdoor] http3`, checked with headless Chromium speaking QUIC to it: the page comes over h3 from the edge's
 * cache, the sites' request limits hold for an HTTP/3 client, the edge sees the QUIC client's address and never one a
 * client claims, HTTPS answers name the HTTP/3 port in Alt-Svc, a certificate swapped in while running and a site
 * added by SIGHUP are served on the HTTP/3 port too.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { combinedPem } from "../../src/frontdoor/cert-store.ts";
import { issueLocalCertificate } from "../../src/frontdoor/local-ca.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { evaluateInPage } from "../support/chromium.ts";
import { curlHttps, presentedCertificate, run, sleep, spkiHash, startEdgeBox, type EdgeBox } from "../support/frontdoor.ts";
import { ScriptedOrigin } from "../support/scripted-origin.ts";

const origin = new ScriptedOrigin();
let served: Served;
let box: EdgeBox;
let ca: string;
let h3Port: number;

beforeAll(async () => {
  served = await serveFetch(origin.handle);
  origin.set("/page", { headers: { "content-type": "text/html", "cache-control": "max-age=600" }, body: "<!doctype html><title>over h3</title><p>hello</p>\n" });
  // Cached by the edge (RFC 9213), never by the browser: each fetch of it reaches the edge.
  origin.set("/edge-only", { headers: { "content-type": "text/plain", "cdn-cache-control": "max-age=600", "cache-control": "no-store" }, body: "edge\n" });
  origin.set("/who", { headers: { "content-type": "text/plain", "cache-control": "no-store" }, body: "who\n" });
  origin.set("/limited/a", { headers: { "content-type": "text/plain", "cache-control": "no-store" }, body: "a\n" });
  box = await startEdgeBox(
    `
# The access log must show the QUIC client's own address, so it is written in full here.
[privacy]
client_addresses = "full"
[frontdoor]
cert_dir = "{dir}/certs"
poll_seconds = 1
http3 = true
http3_port = 0
[[sites]]
names = ["www.h3.test"]
certificate = "local"
limits = [{ name = "limited", paths = ["/limited/"], requests = 3, seconds = 60 }]
`,
    { origin: served.url },
  );
  const line = /front door: HTTP\/3 on udp 127\.0\.0\.1:(\d+) \(Caddy\), Alt-Svc h3=":(\d+)"/.exec(box.running.output());
  if (!line) throw new Error(`no HTTP/3 line:\n${box.running.output()}`);
  h3Port = Number(line[1]);
  expect(Number(line[2])).toBe(h3Port);
  ca = readFileSync(join(box.dir, "certs", "local-ca.pem"), "utf8");
}, 120_000);

afterAll(async () => {
  await box?.stop();
  if (box) rmSync(box.dir, { recursive: true, force: true });
  await served?.close();
});

/** Evaluates `expression` in a page of `host` loaded over HTTP/3 (Chromium forced to QUIC for that origin). */
function overH3(host: string, path: string, expression: string): Promise<unknown> {
  return evaluateInPage(`https://${host}:${h3Port}${path}`, expression, {
    hostRules: `MAP ${host} 127.0.0.1`,
    spki: [spkiHash(ca)],
    quicOrigins: [`${host}:${h3Port}`],
    timeoutMs: 60_000,
  });
}

describe("HTTP/3 through the front door", () => {
  it("tells HTTPS clients where HTTP/3 is (Alt-Svc), on HTTPS answers only", async () => {
    const https = await curlHttps(box, "www.h3.test", "/page", join(box.dir, "certs", "local-ca.pem"), ["-D", "-", "-o", "/dev/null"]);
    expect(https.out).toMatch(new RegExp(`^alt-svc: h3=":${h3Port}"; ma=86400\\r$`, "mi"));
    const plain = await run("curl", ["-sS", "-D", "-", "-o", "/dev/null", "-H", "Host: www.h3.test", `http://127.0.0.1:${box.httpPort}/page`]);
    expect(plain.out.toLowerCase()).not.toContain("alt-svc");
  });

  it("serves a page over h3 from the edge's cache, and the edge sees the QUIC client, never an address it claims", async () => {
    const facts = (await overH3(
      "www.h3.test",
      "/page",
      `(async () => {
        const nav = performance.getEntriesByType("navigation")[0];
        const first = await fetch("/edge-only");
        await first.text();
        const again = await fetch("/edge-only");
        await again.text();
        const who = await fetch("/who", { headers: { "x-forwarded-for": "203.0.113.66" } });
        return { protocol: nav.nextHopProtocol, title: document.title, first: first.headers.get("x-cache-status"), again: again.headers.get("x-cache-status"),
                 againProtocol: await new Promise((done) => {
                   // Resource timing entries arrive after the body: wait for the second one (bounded by the page's timeout).
                   const look = () => { const e = performance.getEntriesByName(again.url); e.length >= 2 ? done(e[1].nextHopProtocol) : setTimeout(look, 50); };
                   look();
                 }), who: who.status };
      })()`,
    )) as { protocol: string; title: string; first: string; again: string; againProtocol: string; who: number };
    expect(facts).toEqual({ protocol: "h3", title: "over h3", first: "MISS", again: "HIT", againProtocol: "h3", who: 200 });
    // The edge writes its access log in batches: wait (bounded) for the line.
    let log = box.events().filter((e) => e.path === "/who");
    for (const deadline = Date.now() + 15_000; !log.length && Date.now() < deadline; await sleep(100)) log = box.events().filter((e) => e.path === "/who");
    expect(log).toHaveLength(1);
    expect(log[0]!.client).toBe("127.0.0.1");
  }, 90_000);

  it("holds the sites' request limits for an HTTP/3 client (429 past the rate)", async () => {
    const statuses = (await overH3(
      "www.h3.test",
      "/page",
      `(async () => { const s = []; for (let i = 0; i < 5; i++) s.push((await fetch("/limited/a")).status); return s; })()`,
    )) as number[];
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    // HAProxy logged the limited requests with the QUIC client's address, through its h3 frontend.
    let limited = box.events().filter((e) => e.event === "limited" && e.via === "h3");
    for (const deadline = Date.now() + 15_000; !limited.length && Date.now() < deadline; await sleep(100)) limited = box.events().filter((e) => e.event === "limited" && e.via === "h3");
    expect(limited.length).toBeGreaterThanOrEqual(1);
    expect(limited[0]!.client).toBe("127.0.0.1");
  }, 90_000);

  it("serves a certificate swapped in while running (another box wrote it into cert_dir) on the HTTP/3 port too", async () => {
    const localCa = { certPath: join(box.dir, "certs", "local-ca.pem"), keyPath: join(box.dir, "certs", "local-ca.key") };
    const pair = await issueLocalCertificate(localCa, ["www.h3.test"], 30);
    const target = join(box.dir, "certs", "www.h3.test.pem");
    writeFileSync(target + ".tmp", combinedPem(pair));
    renameSync(target + ".tmp", target);
    const expected = new X509Certificate(pair.chainPem).serialNumber;
    const serial = async (port: number) => (await presentedCertificate(port, "www.h3.test")).serialNumber;
    let seen = "";
    for (const deadline = Date.now() + 20_000; Date.now() < deadline && seen !== expected; await sleep(250)) seen = await serial(h3Port);
    expect(seen).toBe(expected);
    expect(await serial(box.httpsPort)).toBe(expected);
    expect(await overH3("www.h3.test", "/page", "document.title")).toBe("over h3");
  }, 90_000);

  it("gives a site added by SIGHUP its own certificate on the HTTP/3 port too", async () => {
    const file = join(box.dir, "cdn.toml");
    const before = readFileSync(file, "utf8");
    const sans = async () => (await presentedCertificate(h3Port, "c.h3.test")).subjectAltName;
    expect(await sans()).toBe("DNS:www.h3.test"); // the default certificate: no such site yet
    writeFileSync(file, `${before}\n[[sites]]\nnames = ["c.h3.test"]\ncertificate = "local"\n`);
    process.kill(box.running.proc.pid!, "SIGHUP");
    let seen = "";
    for (const deadline = Date.now() + 20_000; Date.now() < deadline && seen !== "DNS:c.h3.test"; await sleep(250)) seen = (await sans()) ?? "";
    expect(seen).toBe("DNS:c.h3.test");
    const title = await overH3("c.h3.test", "/page", "document.title");
    expect(title).toBe("over h3");
    writeFileSync(file, before);
  }, 90_000);
});
