/** The director under edge health, the query observer and the operator endpoints: pure, with fake probes. */
import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";
// @ts-expect-error: the package ships no types
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { parseConfig } from "../config/config.ts";
import { parseIp } from "../net/ip.ts";
import { answerWire } from "./doh.ts";
import { createDnsNode } from "./node.ts";
import { parseEdgeFigures } from "./operator.ts";
import { tierTopology } from "../status/tiers.ts";
import { renderStatusPage } from "../status/page.ts";
import { createEdgeApp } from "../edge/app.ts";
import { MemoryStore } from "../edge/store.ts";
import { testGeoIp } from "../../test/support/dns-server.ts";
import { TEST_ZONE_TOML } from "../../test/support/dns-zone.ts";

const TOKEN = "unit-admin-token-0123456789";
const TOML = `${TEST_ZONE_TOML.replace('answers = 2', 'answers = 3')
  .replace('lon = -0.13', 'lon = -0.13\nurl = "http://lon.test"')
  .replace('lon = -122.33', 'lon = -122.33\nurl = "http://sea.test"')
  .replace('lon = 116.4', 'lon = 116.4\nurl = "http://pek.test"')}
[dns.health]
interval_ms = 1000
timeout_ms = 100
down_after = 2
up_after = 2
min_up = 1

[admin]
token = "${TOKEN}"
`;

const geoip = testGeoIp();

/**
 * A node whose probes answer from `alive`: true → "ok", false → connection refused, "draining" → 503; an edge's
 * metrics from `edgeMetrics` when it answers for the host.
 */
function node(toml = TOML, edgeMetrics?: (host: string, url: string) => Promise<Response> | undefined) {
  const alive: Record<string, boolean | "draining"> = { "lon.test": true, "sea.test": true, "pek.test": true };
  const lines: string[] = [];
  let now = 0;
  const parts = createDnsNode(parseConfig(toml), {
    geoip,
    node: "unit",
    write: (l) => lines.push(l),
    now: () => now,
    fetchImpl: async (url) => {
      const u = new URL(url);
      if (u.pathname === "/.well-known/cdn/metrics") {
        const own = edgeMetrics?.(u.host, url);
        if (own) return own;
        if (u.host === "lon.test") return new Response('parrot_edge_requests_total{cache_status="HIT",status_class="2xx"} 3\nparrot_edge_requests_total{cache_status="MISS",status_class="2xx"} 1\nparrot_edge_hit_ratio 0.75\n');
        throw new TypeError("connection refused");
      }
      const a = alive[u.host];
      if (a === "draining") return new Response(`draining ${u.host}\n`, { status: 503 });
      if (!a) throw new TypeError("connection refused");
      return new Response(`ok ${u.host}\n`);
    },
  });
  const round = async () => {
    now += 1000;
    await parts.monitor.probeAll();
  };
  return { ...parts, alive, lines, round };
}

function ask(server: ReturnType<typeof node>["server"], client: string, type = "A", transport: "udp" | "tcp" | "doh" = "udp") {
  const q = dnsPacket.encode({ type: "query", id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: "director.geo.example.org", type: type as never }] });
  const a = answerWire(q, parseIp(client), server, transport)!;
  return (dnsPacket.decode(Buffer.from(a.bytes)).answers ?? []).map((x) => (x as { data: string }).data);
}

const LONDON = "81.2.69.142";

describe("the director under edge health", () => {
  it("leaves a down edge out at once (cached answers included), brings it back after up_after, fails open", async () => {
    const n = node();
    expect(ask(n.server, LONDON)).toEqual(["192.0.2.21", "192.0.2.22", "192.0.2.23"]); // before any probe: all up
    await n.round();
    n.alive["lon.test"] = false;
    await n.round();
    expect(ask(n.server, LONDON)[0]).toBe("192.0.2.21"); // one failure: still up (down_after 2)
    await n.round();
    expect(ask(n.server, LONDON)).toEqual(["192.0.2.22", "192.0.2.23"]); // the same cached network, answered anew
    expect(ask(n.server, LONDON, "AAAA")).toEqual(["2001:db8:22::1", "2001:db8:23::1"]);
    n.alive["lon.test"] = true;
    await n.round();
    expect(ask(n.server, LONDON)).toHaveLength(2);
    await n.round();
    expect(ask(n.server, LONDON)[0]).toBe("192.0.2.21");
    for (const k of Object.keys(n.alive)) n.alive[k] = false;
    await n.round();
    await n.round();
    expect(ask(n.server, LONDON)).toEqual(["192.0.2.21", "192.0.2.22", "192.0.2.23"]); // fail-open
    const metrics = await (await n.fetch(new Request("http://dns/metrics", { headers: { authorization: `Bearer ${TOKEN}` } }))).text();
    expect(metrics).toContain("parrot_dns_fail_open 1");
  });

  it("drains: edges saying so, and the operator's authenticated call", async () => {
    const n = node();
    n.alive["lon.test"] = "draining";
    await n.round();
    expect(ask(n.server, LONDON)).toEqual(["192.0.2.22", "192.0.2.23"]);
    n.alive["lon.test"] = true;
    await n.round();
    expect(ask(n.server, LONDON)[0]).toBe("192.0.2.21");
    const drain = (body: unknown, token?: string) =>
      n.fetch(new Request("http://dns/admin/drain", { method: "POST", headers: token ? { authorization: `Bearer ${token}` } : {}, body: JSON.stringify(body) }));
    expect((await drain({ edge: "gb-lon", draining: true })).status).toBe(401);
    expect((await drain({ edge: "gb-lon", draining: true }, "wrong-token-wrong-token")).status).toBe(401);
    expect(ask(n.server, LONDON)[0]).toBe("192.0.2.21");
    expect((await drain({ edge: "nope", draining: true }, TOKEN)).status).toBe(404);
    expect((await drain({ edge: "gb-lon" }, TOKEN)).status).toBe(400);
    const res = await drain({ edge: "gb-lon", draining: true }, TOKEN);
    expect(await res.json()).toEqual({ edge: "gb-lon", draining: true, state: "up" });
    expect(ask(n.server, LONDON)).toEqual(["192.0.2.22", "192.0.2.23"]);
    await drain({ edge: "gb-lon", draining: false }, TOKEN);
    expect(ask(n.server, LONDON)[0]).toBe("192.0.2.21");
  });

  it("keeps config-drained edges out from the start", () => {
    const n = node(TOML.replace('url = "http://lon.test"', 'url = "http://lon.test"\ndrain = true'));
    expect(ask(n.server, LONDON)).toEqual(["192.0.2.22", "192.0.2.23"]);
  });
});

describe("observing queries", () => {
  it("writes full addresses only when [privacy] asks, and an ECS /32 as its /24 otherwise", () => {
    const ecs32 = (id: number) =>
      dnsPacket.encode({
        type: "query",
        id,
        questions: [{ name: "director.geo.example.org", type: "A" }],
        additionals: [{ name: ".", type: "OPT", udpPayloadSize: 1232, flags: 0, options: [{ code: 8, ip: "89.160.20.113", sourcePrefixLength: 32, scopePrefixLength: 0 }] } as never],
      });
    const truncated = node();
    answerWire(ecs32(1), parseIp(LONDON), truncated.server, "doh");
    expect(JSON.parse(truncated.lines[0]!)).toMatchObject({ client: "81.2.69.0/24", ecs: "89.160.20.0/24" });
    const full = node(TOML + '\n[privacy]\nclient_addresses = "full"\n');
    answerWire(ecs32(2), parseIp(LONDON), full.server, "doh");
    expect(JSON.parse(full.lines[0]!)).toMatchObject({ client: LONDON, ecs: "89.160.20.113/32" });
    const hashed = node(TOML + '\n[privacy]\nclient_addresses = "hash"\n');
    answerWire(ecs32(3), parseIp(LONDON), hashed.server, "doh");
    const line = JSON.parse(hashed.lines[0]!) as { client: string; ecs: string };
    expect(line.client).toMatch(/^h[0-9a-f]{16}$/);
    expect(hashed.lines[0]).not.toContain("81.2.69");
    expect(line.ecs).toMatch(/^h[0-9a-f]{16}\/32$/);
  });

  it("logs one JSON line per query with every field", async () => {
    const n = node();
    ask(n.server, LONDON, "A", "tcp");
    const q = dnsPacket.encode({
      type: "query",
      id: 2,
      questions: [{ name: "WWW.geo.example.org", type: "A" }],
      additionals: [{ name: ".", type: "OPT", udpPayloadSize: 1232, flags: 0, options: [{ code: 8, ip: "89.160.20.0", sourcePrefixLength: 24, scopePrefixLength: 0 }] } as never],
    });
    answerWire(q, parseIp("127.0.0.1"), n.server, "doh");
    const [a, b] = n.lines.map((l) => JSON.parse(l));
    // [privacy] by default: the client's /24, never the address.
    expect(a).toMatchObject({ transport: "tcp", client: "81.2.69.0/24", qname: "director.geo.example.org.", qtype: "A", rcode: "NOERROR", answers: ["gb-lon", "us-sea", "cn-pek"], ecs: null });
    expect(b).toMatchObject({ transport: "doh", client: "127.0.0.0/24", qname: "WWW.geo.example.org.", ecs: "89.160.20.0/24" });
    expect(b.answers[0]).toBe("director.geo.example.org"); // the CNAME, then the edges
    expect([...b.answers.slice(1)].sort()).toEqual(["cn-pek", "gb-lon", "us-sea"]);
    for (const l of [a, b]) {
      expect(Object.keys(l)).toEqual(["time", "transport", "client", "qname", "qtype", "rcode", "answers", "ecs", "duration_us"]);
      expect(new Date(l.time).getTime()).toBeGreaterThan(0);
      expect(l.duration_us).toBeGreaterThanOrEqual(0);
    }
  });

  it("logs nothing with query_log = false, and still counts", async () => {
    const n = node(TOML.replace('hostmaster = "hostmaster.example.org"', 'hostmaster = "hostmaster.example.org"\nquery_log = false'));
    ask(n.server, LONDON);
    expect(n.lines).toEqual([]);
    expect(n.observer.totalQueries()).toBe(1);
  });

  it("exposes the DNS families in Prometheus text a parser reads back", async () => {
    const n = node();
    await n.round();
    ask(n.server, LONDON);
    ask(n.server, LONDON, "TXT", "doh");
    answerWire(dnsPacket.encode({ type: "query", id: 3, questions: [{ name: "nope.geo.example.org", type: "AAAA" }] }), null, n.server, "tcp");
    expect((await n.fetch(new Request("http://dns/metrics"))).status).toBe(401);
    const text = await (await n.fetch(new Request("http://dns/metrics", { headers: { authorization: `Bearer ${TOKEN}` } }))).text();
    const parsed = parsePrometheusTextFormat(text) as Array<{ name: string; type: string; metrics: Array<{ labels: Record<string, string>; value: string }> }>;
    const f = Object.fromEntries(parsed.map((x) => [x.name, x]));
    expect(f.parrot_dns_queries_total!.type).toBe("COUNTER");
    expect(f.parrot_dns_queries_total!.metrics).toContainEqual({ labels: { transport: "udp", qtype: "A", rcode: "NOERROR" }, value: "1" });
    expect(f.parrot_dns_queries_total!.metrics).toContainEqual({ labels: { transport: "doh", qtype: "TXT", rcode: "NOERROR" }, value: "1" });
    expect(f.parrot_dns_queries_total!.metrics).toContainEqual({ labels: { transport: "tcp", qtype: "AAAA", rcode: "NXDOMAIN" }, value: "1" });
    expect(f.parrot_dns_answers_total!.metrics).toContainEqual({ labels: { edge: "gb-lon" }, value: "1" });
    expect(f.parrot_dns_edge_health!.metrics).toContainEqual({ labels: { edge: "gb-lon", state: "up" }, value: "1" });
    expect(f.parrot_dns_edge_health!.metrics).toContainEqual({ labels: { edge: "gb-lon", state: "down" }, value: "0" });
    expect(f.parrot_dns_fail_open!.metrics[0]!.value).toBe("0");
    expect(f.parrot_dns_edge_in_answers!.metrics).toHaveLength(3);
  });
});

describe("status", () => {
  it("lists the edges with health, answers and the edge's own figures (– when they cannot be read)", async () => {
    const n = node();
    n.alive["pek.test"] = false;
    await n.round();
    ask(n.server, LONDON);
    const s = (await (await n.fetch(new Request("http://dns/status.json"))).json()) as { edges: Array<Record<string, unknown>> };
    expect(s.edges.map((e) => [e.name, e.state, e.answers, e.hitRatio, e.requests, e.inAnswers])).toEqual([
      ["gb-lon", "up", 1, 0.75, 4, true],
      ["us-sea", "up", 1, undefined, undefined, true],
      ["cn-pek", "down", 0, undefined, undefined, false],
    ]);
    const html = await (await n.fetch(new Request("http://dns/status"))).text();
    expect(html).toContain('data-edge="cn-pek" data-state="down"');
    expect(html).toContain("75.0 %");
  });

  it("shows the tier topology from the edges' own metrics: each shield's URL, role and passive health, each edge's role", async () => {
    // gb-lon is a real edge app filling from shield-fra (which refuses connections) and us-sea (a box in the zone).
    let now = Date.parse("2026-12-07T19:00:00Z");
    const edge = createEdgeApp({
      config: parseConfig(`[edge]
name = "gb-lon"
origin = "http://origin.test"
origin_max_fails = 1
origin_fail_timeout = 10
shields = [ { name = "shield-fra", url = "http://fra.test:8787" }, { name = "us-sea", url = "http://sea.test" } ]
shield_health = { interval_ms = 0 }   # passive health here; probes: the test below

[admin]
token = "${TOKEN}"
`),
      store: new MemoryStore(() => now),
      now: () => now,
      log: () => undefined,
      fetch: async (input) => {
        const host = new URL(String(input instanceof Request ? input.url : input)).host;
        if (host === "fra.test:8787") throw new TypeError("connection refused");
        return new Response("x", { headers: { "cache-control": "max-age=60", "cache-status": host === "sea.test" ? "us-sea; hit" : "" } });
      },
    });
    const ctx = { waitUntil: () => undefined, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;
    // Paths until one hashes to shield-fra first: its failure skips it (origin_max_fails = 1).
    for (let i = 0; i < 64; i++) {
      const metrics = await (await edge.fetch(new Request("http://lon.test/.well-known/cdn/metrics", { headers: { authorization: `Bearer ${TOKEN}` } }), {}, ctx)).text();
      if (metrics.includes('parrot_edge_shield_up{shield="shield-fra"} 0')) break;
      await (await edge.fetch(new Request(`http://www.example.org/o${i}`), {}, ctx)).text();
    }
    const n = node(TOML, (host, url) => (host === "lon.test" ? Promise.resolve(edge.fetch(new Request(url, { headers: { authorization: `Bearer ${TOKEN}` } }), {}, ctx)) : undefined));
    await n.round();
    const s = (await (await n.fetch(new Request("http://dns/status.json"))).json()) as { edges: Array<Record<string, unknown>>; shields: unknown[] };
    expect(s.edges.map((e) => [e.name, e.tier])).toEqual([["gb-lon", "edge"], ["us-sea", "both"], ["cn-pek", "edge"]]);
    expect(s.shields).toEqual([
      { name: "shield-fra", urls: ["http://fra.test:8787"], role: "shield", upAt: [], skippedBy: [{ edge: "gb-lon", until: now + 10_000 }] },
      { name: "us-sea", urls: ["http://sea.test"], role: "both", upAt: ["gb-lon"], skippedBy: [] },
    ]);
    const html = await (await n.fetch(new Request("http://dns/status"))).text();
    expect(html).toContain("skipped by gb-lon until 2026-12-07T19:00:10.000Z");
    expect(html).toContain('data-shield="us-sea" data-state="up"');
    now += 10_000; // the skip ends: up again at the next look
    const later = (await (await n.fetch(new Request("http://dns/status.json"))).json()) as { shields: Array<{ name: string; upAt: string[] }> };
    expect(later.shields.map((x) => [x.name, x.upAt])).toEqual([["shield-fra", ["gb-lon"]], ["us-sea", ["gb-lon"]]]);
  });

  it("reads an edge's figures from its metrics text", () => {
    expect(parseEdgeFigures("# HELP x\nparrot_edge_hit_ratio 0.5\nparrot_edge_requests_total{a=\"b\"} 2\nparrot_edge_requests_total{a=\"c\"} 3\n")).toEqual({ hitRatio: 0.5, requests: 5 });
    expect(parseEdgeFigures("garbage")).toEqual({});
    // A shield the edge's probes find down (shield_health), shown as such on the page.
    const probed = parseEdgeFigures('parrot_edge_shield_skipped_until_seconds{shield="fra",url="http://fra"} 0\nparrot_edge_shield_probe{shield="fra",state="up"} 0\nparrot_edge_shield_probe{shield="fra",state="down"} 1\n');
    expect(probed.shields).toEqual([{ name: "fra", url: "http://fra", probedDown: true }]);
    const { shields } = tierTopology([{ name: "gb-lon", shields: probed.shields }]);
    expect(shields).toEqual([{ name: "fra", urls: ["http://fra"], role: "shield", upAt: [], skippedBy: [], downAt: ["gb-lon"] }]);
    const html = renderStatusPage({ zone: "z", node: "n", generatedAt: 0, failOpen: false, queries: 0, edges: [], shields });
    expect(html).toContain('data-shield="fra" data-state="skipped"');
    expect(html).toContain("down by the probes of gb-lon");
    expect(
      parseEdgeFigures('parrot_edge_shield_skipped_until_seconds{shield="a",url="http://a:1/x\\"y"} 0\nparrot_edge_shield_skipped_until_seconds{shield="b",url="http://b"} 1800000000\nparrot_edge_shield_skipped_until_seconds{shield="c"} 0\nparrot_edge_shield_skipped_until_seconds{shield="d,url="x"} 0\n'),
    ).toEqual({ shields: [{ name: "a", url: 'http://a:1/x"y' }, { name: "b", url: "http://b", skippedUntil: 1_800_000_000_000 }] });
  });
});
