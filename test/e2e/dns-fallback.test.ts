/**
 * Issue 13's DNS side on a real DNS node: the director answers the `[dns.director] fallback` (anycast) addresses when
 * too few edges are in service, and the status page, /status.json and /metrics show each edge box's announcement
 * (`cdn-anycast` on its health answer). The edge boxes are stand-ins on loopback that answer the health path as an
 * edge box does; what is under test is the DNS node's prober and director.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { GEOIP_TOML, run, startDnsNode, type DnsNode } from "../support/dns-process.ts";
import { pollUntil } from "../support/dns-cdn.ts";
import { TEST_DNS_TOML } from "../support/dns-zone.ts";

const TOKEN = "fallback-admin-token-0123456789";
/** Each stand-in edge: whether its health answer is ok, and its cdn-anycast header (none: no anycast). */
const edges: Record<string, { ok: boolean; anycast?: string; served?: Served }> = {
  "gb-lon": { ok: true, anycast: "announced" },
  "us-sea": { ok: true, anycast: "withdrawn" },
  "cn-pek": { ok: true },
};
let node: DnsNode;

beforeAll(async () => {
  for (const [name, e] of Object.entries(edges))
    e.served = await serveFetch(() => {
      const headers: Record<string, string> = e.anycast ? { "cdn-anycast": e.anycast } : {};
      return e.ok ? new Response(`ok ${name}\n`, { headers }) : new Response("store unreachable\n", { status: 503, headers });
    });
  const place = { "gb-lon": [51.51, -0.13, 21], "us-sea": [47.61, -122.33, 22], "cn-pek": [39.9, 116.4, 23] } as const;
  const toml = `${TEST_DNS_TOML.replace('default = ["us-sea"]', 'default = ["us-sea"]\nfallback = { ipv4 = ["198.51.100.53"], ipv6 = ["2001:db8:53::1"] }')}
[dns.health]
interval_ms = 200
timeout_ms = 150
down_after = 1
up_after = 1

[admin]
token = "${TOKEN}"
${GEOIP_TOML}${Object.entries(place)
  .map(([name, [lat, lon, n]]) => `\n[[edges]]\nname = "${name}"\nurl = "${edges[name]!.served!.url}"\nipv4 = "192.0.2.${n}"\nipv6 = "2001:db8:${n}::1"\nlat = ${lat}\nlon = ${lon}\n`)
  .join("")}`;
  node = await startDnsNode({ toml });
});
afterAll(async () => {
  await node?.stop();
  for (const e of Object.values(edges)) await e.served?.close();
});

const dig = (...args: string[]) => run("dig", ["@127.0.0.1", "-p", String(node.dnsPort), "+time=3", "+tries=1", "+short", ...args]);
const status = async () =>
  (await (await fetch(`http://127.0.0.1:${node.httpPort}/status.json`)).json()) as {
    failOpen: boolean;
    fallback: boolean;
    edges: Array<{ name: string; state: string; anycast: string; inAnswers: boolean }>;
  };

it("shows each edge's anycast announcement on the status page, in /status.json and in /metrics", async () => {
  const seen = await pollUntil(async () => {
    const s = await status();
    return s.edges.every((e) => e.state === "up") ? s : undefined;
  }, 10_000);
  expect(seen!.value.edges.map((e) => [e.name, e.anycast])).toEqual([["gb-lon", "announced"], ["us-sea", "withdrawn"], ["cn-pek", "-"]]);
  const page = await (await fetch(`http://127.0.0.1:${node.httpPort}/status`)).text();
  expect(page).toMatch(/data-edge="gb-lon"[\s\S]*?<td class="anycast">announced<\/td>/);
  expect(page).toMatch(/data-edge="cn-pek"[\s\S]*?<td class="anycast">-<\/td>/);
  const metrics = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
  expect(metrics).toContain('parrot_dns_edge_anycast{edge="gb-lon",state="announced"} 1');
  expect(metrics).toContain('parrot_dns_edge_anycast{edge="us-sea",state="withdrawn"} 1');
  expect(metrics).toContain('parrot_dns_edge_anycast{edge="cn-pek",state="unknown"} 1');
  expect((await dig("+subnet=81.2.69.142/32", "director.geo.example.org", "A")).out.trim().split("\n")).toEqual(["192.0.2.21", "192.0.2.22"]);
});

it("answers the fallback addresses while every edge is down, and the nearest edges once they are back", async () => {
  for (const e of Object.values(edges)) e.ok = false;
  const fell = await pollUntil(async () => {
    const a = (await dig("+subnet=81.2.69.142/32", "director.geo.example.org", "A")).out.trim();
    return a === "198.51.100.53" ? a : undefined;
  }, 10_000);
  expect(fell).toBeDefined();
  expect((await dig("+subnet=175.16.199.0/24", "director.geo.example.org", "AAAA")).out.trim()).toBe("2001:db8:53::1");
  const s = await status();
  expect([s.fallback, s.failOpen, s.edges.some((e) => e.inAnswers)]).toEqual([true, false, false]);
  const page = await (await fetch(`http://127.0.0.1:${node.httpPort}/status`)).text();
  expect(page).toContain("fallback (anycast) addresses");
  for (const e of Object.values(edges)) e.ok = true;
  const back = await pollUntil(async () => {
    const a = (await dig("+subnet=81.2.69.142/32", "director.geo.example.org", "A")).out.trim();
    return a.startsWith("192.0.2.21") ? a : undefined;
  }, 10_000);
  expect(back).toBeDefined();
});
