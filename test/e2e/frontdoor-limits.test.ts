/**
 * Per-client limits in the front door, under a real flood: one loopback address (127.0.0.10) sends hundreds of
 * requests over HTTP/2 with curl --parallel and gets 429s, then a ban that closes its connections, while a second
 * address (127.0.0.11) sees no error; too many concurrent connections from one address are closed; the allow list
 * is never limited; a ban ends; everything shows in the metrics and the JSON log.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { curlHttps, run, sleep, startEdgeBox, type EdgeBox } from "../support/frontdoor.ts";
import { ScriptedOrigin } from "../support/scripted-origin.ts";
import { join } from "node:path";

const TOKEN = "frontdoor-limits-token-01";
const origin = new ScriptedOrigin();
let box: EdgeBox;
let ca: string;

beforeAll(async () => {
  origin.set("/page", { headers: { "content-type": "text/html", "cache-control": "max-age=600" }, body: "<p>hello</p>\n" });
  origin.set("/slow", { headers: { "content-type": "text/plain", "cache-control": "no-store" }, body: "slow\n", delayMs: 3000 });
  box = await startEdgeBox(
    `
# The test tells its clients apart by their loopback addresses in the log events.
[privacy]
client_addresses = "full"
[admin]
token = "${TOKEN}"
[frontdoor]
cert_dir = "{dir}/certs"
allow = ["127.0.0.13"]
connections = 4
ban = { after = 20, within = 4, seconds = 6 }
[[sites]]
names = ["l.fd.test"]
certificate = "local"
limits = [ { name = "site", requests = 40, seconds = 2 } ]
`,
    { origin: origin.handle },
  );
  ca = join(box.dir, "certs", "local-ca.pem");
}, 120_000);

afterAll(async () => {
  await box?.stop();
});

/** `n` requests from `source` with curl --parallel (HTTP/2 multiplexed); the status of each, 0 for a failed transfer. */
async function flood(source: string, n: number, path = "/page", extra: string[] = []): Promise<number[]> {
  const r = await curlHttps(box, "l.fd.test", `${path}?[1-${n}]`, ca, [
    "--interface", source, "--parallel", "--parallel-max", "16", "-o", "/dev/null", "-w", "%{http_code}\\n", ...extra,
  ]);
  return r.out.trim().split("\n").map(Number);
}

const count = (codes: number[], code: number) => codes.filter((c) => c === code).length;

describe("per-client limits", () => {
  it("answers a flooding address 429, then bans it (connections closed), while another address is served", async () => {
    let goodDone = false;
    const good: number[] = [];
    const goodClient = (async () => {
      // Until the flood is over and at least 8 requests were made, whatever the machine's speed.
      for (let i = 0; i < 60 && !(goodDone && good.length >= 8); i++) {
        const r = await curlHttps(box, "l.fd.test", `/page?good=${i}`, ca, ["--interface", "127.0.0.11", "-o", "/dev/null", "-w", "%{http_code}"]);
        good.push(Number(r.out));
        await sleep(150);
      }
    })();
    const codes = await flood("127.0.0.10", 400);
    await sleep(1000);
    goodDone = true;
    await goodClient;

    console.log(`flood from 127.0.0.10: ${count(codes, 200)} × 200, ${count(codes, 429)} × 429, ${count(codes, 0)} cut off (banned); 127.0.0.11: ${good.length} requests, all ${[...new Set(good)].join(",")}`);
    expect(codes).toHaveLength(400);
    expect(count(codes, 200)).toBeGreaterThan(0);
    expect(count(codes, 200)).toBeLessThanOrEqual(120); // 40 per 2 s, whatever the machine's speed within reason
    expect(count(codes, 429)).toBeGreaterThanOrEqual(20);
    expect(count(codes, 0)).toBeGreaterThan(0); // banned: the rest were cut off
    expect(good.length).toBeGreaterThan(5);
    expect(good.every((c) => c === 200)).toBe(true);

    // While banned, new connections from the address are closed before TLS; others are not.
    const banned = await curlHttps(box, "l.fd.test", "/page", ca, ["--interface", "127.0.0.10", "-o", "/dev/null", "-w", "%{http_code}"]);
    expect(banned.code).not.toBe(0);
    expect(banned.out).toBe("000");

    // The front door's log lines reach the box's output asynchronously: wait (bounded) for the 429s' lines.
    for (let i = 0; i < 40 && box.events().filter((e) => e.event === "limited").length < 20; i++) await sleep(250);
    const events = box.events();
    const limited = events.filter((e) => e.event === "limited");
    expect(limited.length).toBeGreaterThanOrEqual(20);
    expect(limited[0]).toMatchObject({ source: "frontdoor", client: "127.0.0.10", host: `l.fd.test:${box.httpsPort}`, status: 429, limit: "site" });
    expect(events.some((e) => e.event === "limited" && e.client === "127.0.0.11")).toBe(false);
    for (let i = 0; i < 40 && !box.events().some((e) => e.event === "ban"); i++) await sleep(250);
    expect(box.events().find((e) => e.event === "ban")).toMatchObject({ client: "127.0.0.10" });

    const m = (await curlHttps(box, "l.fd.test", "/.well-known/cdn/frontdoor/metrics", ca, ["--interface", "127.0.0.11", "-H", `Authorization: Bearer ${TOKEN}`])).out;
    expect(Number(/^parrot_frontdoor_limited_requests_total\{limit="site"\} (\d+)$/m.exec(m)?.[1])).toBeGreaterThanOrEqual(20);
    expect(Number(/^parrot_frontdoor_bans_total (\d+)$/m.exec(m)?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(/^parrot_frontdoor_rejected_connections_total (\d+)$/m.exec(m)?.[1])).toBeGreaterThanOrEqual(1);

    // The ban is temporary: after `seconds` (and no strikes within `within`), the address is served again.
    let back = "";
    for (let i = 0; i < 30 && back !== "200"; i++) {
      await sleep(500);
      back = (await curlHttps(box, "l.fd.test", "/page", ca, ["--interface", "127.0.0.10", "-o", "/dev/null", "-w", "%{http_code}"])).out;
    }
    expect(back).toBe("200");
  }, 90_000);

  it("closes connections beyond the concurrent limit of one address, and not another's", async () => {
    // Eight HTTP/1.1 requests at once to a 3-second page: eight connections; four are allowed.
    const codes = await flood("127.0.0.12", 8, "/slow", ["--http1.1"]);
    expect(count(codes, 200)).toBe(4);
    expect(count(codes, 0)).toBe(4);
    const other = await flood("127.0.0.14", 4, "/slow", ["--http1.1"]);
    expect(other).toEqual([200, 200, 200, 200]);
  }, 60_000);

  it("never limits an address on the allow list", async () => {
    const codes = await flood("127.0.0.13", 300);
    expect(count(codes, 200)).toBe(300);
    const plain = await run("curl", ["-sS", "--interface", "127.0.0.13", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: l.fd.test", `http://127.0.0.1:${box.httpPort}/page`]);
    expect(plain.out).toBe("301");
  });
});
