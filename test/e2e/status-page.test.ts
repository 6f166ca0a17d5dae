/**
 * The DNS node's operator surface with real processes: the status page rendered by headless Chromium (Debian
 * `chromium`) with every edge listed and a screenshot saved, /metrics read by a Prometheus text-format parser, and
 * the query log (one JSON object per line on stdout) with every field. One edge runs (eu-lon, with traffic: a MISS
 * and a HIT), one has a url but nothing listening (down), one has no url (never probed: unknown).
 */
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as dnsPacket from "dns-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: the package ships no types
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { run } from "../support/dns-process.ts";
import { CLIENT, DIRECTOR, THREE_EDGES, TOKEN, pollUntil, startCdn, type Cdn } from "../support/dns-cdn.ts";

const CHROMIUM = "/usr/bin/chromium";
/** Where the screenshot is kept after the run (to look at it). */
export const SCREENSHOT = join(tmpdir(), "parrot-status-page.png");

let cdn: Cdn;
let profile: string;
beforeAll(async () => {
  const edges = THREE_EDGES.map((e) => (e.name === "as-pek" ? { ...e, probed: false } : e));
  cdn = await startCdn({ edges, health: { interval_ms: 300, timeout_ms: 250, down_after: 1, up_after: 1 }, answers: 2, start: ["eu-lon"] });
  profile = mkdtempSync(join(tmpdir(), "parrot-chromium-"));
  const probed = await pollUntil(async () => {
    const s = (await (await fetch(`http://127.0.0.1:${cdn.httpPort}/status.json`)).json()) as { edges: Array<{ state: string }> };
    return s.edges[0]!.state === "up" && s.edges[1]!.state === "down" ? true : undefined;
  }, 10_000);
  expect(probed).toBeDefined();
  // Edge traffic (a MISS, then a HIT) and DNS queries over each transport.
  for (let i = 0; i < 2; i++) await (await fetch(`${cdn.edgeUrl("eu-lon")}/page`)).text();
  await cdn.dig(`+subnet=${CLIENT.london}`, DIRECTOR, "A");
  await cdn.dig("+tcp", `+subnet=${CLIENT.changchun}`, DIRECTOR, "A");
  await cdn.dig("nothing.geo.example.org", "AAAA");
  const q = dnsPacket.encode({ type: "query", id: 0, questions: [{ name: DIRECTOR, type: "TXT" }] });
  expect((await fetch(`http://127.0.0.1:${cdn.httpPort}/dns-query?dns=${Buffer.from(q).toString("base64url")}`)).status).toBe(200);
}, 120_000);

afterAll(async () => {
  await cdn?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

const chromium = (...args: string[]) =>
  run(
    CHROMIUM,
    [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", `--user-data-dir=${profile}`, "--window-size=1200,900", ...args,
    ],
    60_000,
  );

describe("status page", () => {
  it("renders in headless Chromium with every edge, its health and figures", async () => {
    const url = `http://127.0.0.1:${cdn.httpPort}/status`;
    const dom = await chromium("--dump-dom", url);
    expect(dom.code, dom.out).toBe(0);
    expect(dom.out).toContain("<title>parrot-cdn status: geo.example.org</title>");
    expect(dom.out).toMatch(/data-edge="eu-lon" data-state="up"/);
    expect(dom.out).toMatch(/data-edge="na-sea" data-state="down"/);
    expect(dom.out).toMatch(/data-edge="as-pek" data-state="unknown"/);
    const row = (name: string) => new RegExp(`<tr data-edge="${name}"[\\s\\S]*?</tr>`).exec(dom.out)![0];
    expect(row("eu-lon")).toContain("50.0 %"); // the edge's own hit ratio (MISS then HIT)
    expect(row("na-sea")).toContain("–"); // its metrics cannot be read
    expect(dom.out).toMatch(/<svg[^>]*aria-label="edge locations"/);
    expect(dom.out).not.toMatch(/<script|src="http|href="http/);

    rmSync(SCREENSHOT, { force: true });
    const shot = await chromium(`--screenshot=${SCREENSHOT}`, url);
    expect(shot.code, shot.out).toBe(0);
    expect(existsSync(SCREENSHOT)).toBe(true);
    expect(statSync(SCREENSHOT).size).toBeGreaterThan(10_000);
    console.log(`status page screenshot: ${SCREENSHOT}`);
  }, 120_000);
});

describe("metrics", () => {
  it("exposes the DNS families to a Prometheus text-format parser, with the token only", async () => {
    const url = `http://127.0.0.1:${cdn.httpPort}/metrics`;
    expect((await fetch(url)).status).toBe(401);
    const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
    type Family = { name: string; type: string; metrics: Array<{ labels: Record<string, string>; value: string }> };
    const f = Object.fromEntries((parsePrometheusTextFormat(await res.text()) as Family[]).map((x) => [x.name, x]));
    const q = f.parrot_dns_queries_total!;
    expect(q.type).toBe("COUNTER");
    const has = (labels: Record<string, string>) => q.metrics.some((m) => Object.entries(labels).every(([k, v]) => m.labels[k] === v) && Number(m.value) >= 1);
    expect(has({ transport: "udp", qtype: "A", rcode: "NOERROR" })).toBe(true);
    expect(has({ transport: "tcp", qtype: "A", rcode: "NOERROR" })).toBe(true);
    expect(has({ transport: "udp", qtype: "AAAA", rcode: "NXDOMAIN" })).toBe(true);
    expect(has({ transport: "doh", qtype: "TXT", rcode: "NOERROR" })).toBe(true);
    expect(f.parrot_dns_answers_total!.type).toBe("COUNTER");
    expect(Number(f.parrot_dns_answers_total!.metrics.find((m) => m.labels.edge === "eu-lon")!.value)).toBeGreaterThanOrEqual(1);
    const health = f.parrot_dns_edge_health!;
    expect(health.type).toBe("GAUGE");
    const state = (edge: string) => health.metrics.find((m) => m.labels.edge === edge && m.value === "1")!.labels.state;
    expect([state("eu-lon"), state("na-sea"), state("as-pek")]).toEqual(["up", "down", "unknown"]);
    expect(health.metrics).toHaveLength(12); // one series per edge and state
    expect(f.parrot_dns_fail_open!.metrics[0]!.value).toBe("0");
    expect(f.parrot_dns_edge_in_answers!.metrics.find((m) => m.labels.edge === "na-sea")!.value).toBe("0");
    expect(f.parrot_dns_edge_drained!.type).toBe("GAUGE");
  });
});

describe("query log", () => {
  it("writes one JSON line per query with every field", async () => {
    const lines = await pollUntil(async () => {
      const l = cdn.dns.output().split("\n").filter((x) => x.startsWith("{"));
      return l.length >= 4 ? l : undefined;
    }, 5_000);
    expect(lines).toBeDefined();
    const entries = lines!.value.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const e of entries) {
      expect(Object.keys(e)).toEqual(["time", "transport", "client", "qname", "qtype", "rcode", "answers", "ecs", "duration_us"]);
      expect(Number.isNaN(Date.parse(e.time as string))).toBe(false);
      expect(typeof e.duration_us).toBe("number");
      expect(Array.isArray(e.answers)).toBe(true);
    }
    expect(entries).toContainEqual(
      // [privacy] by default: the resolver's network, and an ECS /32 written as its /24.
      expect.objectContaining({ transport: "udp", client: "127.0.0.0/24", qname: `${DIRECTOR}.`, qtype: "A", rcode: "NOERROR", answers: ["eu-lon", "as-pek"], ecs: "81.2.69.0/24" }),
    );
    expect(entries).toContainEqual(expect.objectContaining({ transport: "tcp", answers: ["as-pek", "eu-lon"], ecs: "175.16.199.0/24" }));
    expect(entries).toContainEqual(expect.objectContaining({ transport: "udp", qname: "nothing.geo.example.org.", qtype: "AAAA", rcode: "NXDOMAIN", answers: [] }));
    expect(entries).toContainEqual(expect.objectContaining({ transport: "doh", qtype: "TXT", ecs: null }));
  });
});
