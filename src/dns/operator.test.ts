/** The operator endpoints that change answers: ACME challenge records and the director's fallback, with a fake clock. */
import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { parseIp } from "../net/ip.ts";
import { testGeoIp } from "../../test/support/dns-server.ts";
import { TEST_ZONE_TOML } from "../../test/support/dns-zone.ts";
import { ChallengeStore, type ChallengeChange } from "./challenges.ts";
import { answerWire } from "./doh.ts";
import { createDnsNode } from "./node.ts";

const TOKEN = "unit-admin-token-0123456789";
const NAME = "_acme-challenge.www.geo.example.org";

function node(toml = `${TEST_ZONE_TOML}\n[admin]\ntoken = "${TOKEN}"\n`, max = 1000) {
  let now = 1_000_000;
  const changes: ChallengeChange[] = [];
  const challenges = new ChallengeStore(max, () => now);
  const parts = createDnsNode(parseConfig(toml), {
    geoip: testGeoIp(),
    node: "unit",
    now: () => now,
    challenges,
    onChallenge: (c) => changes.push(c),
    fetchImpl: async () => {
      throw new TypeError("no edges here");
    },
  });
  const call = (method: string, body: unknown, token: string | null = TOKEN) =>
    parts.fetch(
      new Request("http://dns/admin/acme-challenge", {
        method,
        headers: token ? { authorization: `Bearer ${token}` } : {},
        body: typeof body === "string" ? body : JSON.stringify(body),
      }),
    );
  const ask = (name: string, type = "TXT") => {
    const a = answerWire(dnsPacket.encode({ type: "query", id: 1, questions: [{ name, type: type as never }] }), parseIp("192.0.2.9"), parts.server, "udp")!;
    return dnsPacket.decode(Buffer.from(a.bytes)) as dnsPacket.DecodedPacket & { rcode: string };
  };
  return { parts, call, ask, changes, advance: (ms: number) => void (now += ms) };
}
const txts = (p: dnsPacket.DecodedPacket) => (p.answers ?? []).map((a) => ((a as dnsPacket.TxtAnswer).data as Buffer[]).map(String).join(""));

describe("POST/DELETE /admin/acme-challenge", () => {
  it("publishes TXT values with TTL min([dns] ttl, 60) until they expire", async () => {
    const n = node();
    expect(n.ask(NAME).rcode).toBe("NXDOMAIN");
    const res = await n.call("POST", { name: NAME, value: "token-one", ttl: 120 });
    expect([res.status, await res.json()]).toEqual([200, { ok: true }]);
    expect((await n.call("POST", { name: NAME.toUpperCase(), value: "token-two" })).status).toBe(200);
    const p = n.ask(NAME);
    expect(p.rcode).toBe("NOERROR");
    expect(txts(p).sort()).toEqual(["token-one", "token-two"]);
    expect((p.answers![0] as { ttl: number }).ttl).toBe(30);
    // Other types at the name: NODATA; the name above it exists now (empty non-terminal); other names unchanged.
    expect([n.ask(NAME, "A").rcode, n.ask(NAME, "A").answers?.length ?? 0]).toEqual(["NOERROR", 0]);
    expect(n.ask("_acme-challenge.other.geo.example.org").rcode).toBe("NXDOMAIN");
    n.advance(120_000);
    expect(txts(n.ask(NAME))).toEqual(["token-two"]); // the default ttl is 600 s
    n.advance(480_000);
    expect(n.ask(NAME).rcode).toBe("NXDOMAIN");
    expect(n.changes.map((c) => c.op)).toEqual(["add", "add"]);
  });

  it("removes one value, or all values of the name", async () => {
    const n = node();
    for (const value of ["a", "b", "c"]) await n.call("POST", { name: NAME, value });
    expect((await n.call("DELETE", { name: NAME, value: "b" })).status).toBe(200);
    expect(txts(n.ask(NAME)).sort()).toEqual(["a", "c"]);
    expect((await n.call("DELETE", { name: NAME })).status).toBe(200);
    expect(n.ask(NAME).rcode).toBe("NXDOMAIN");
    expect(n.changes.at(-1)).toEqual({ op: "remove", name: NAME, value: undefined });
  });

  it("refuses bad calls with the reason, unauthenticated ones with 401/403, and more than the limit with 507", async () => {
    const n = node(undefined, 2);
    const reason = async (r: Response) => [r.status, ((await r.json()) as { error: string }).error];
    expect(await reason(await n.call("POST", { name: "_acme-challenge.example.com", value: "x" }))).toEqual([400, '"name" must be inside the zone geo.example.org']);
    expect((await reason(await n.call("POST", { name: "www.geo.example.org", value: "x" })))[0]).toBe(400);
    expect((await reason(await n.call("POST", { name: NAME, value: "" })))[0]).toBe(400);
    expect((await reason(await n.call("POST", { name: NAME, value: "x", ttl: 3601 })))[1]).toMatch(/ttl/);
    expect((await reason(await n.call("POST", { name: NAME, value: "x", ttl: 1.5 })))[1]).toMatch(/ttl/);
    expect((await reason(await n.call("POST", "not json")))[1]).toMatch(/JSON/);
    expect((await n.call("POST", { name: NAME, value: "x" }, null)).status).toBe(401);
    expect((await n.call("POST", { name: NAME, value: "x" }, "wrong-token-wrong-token")).status).toBe(401);
    expect((await n.call("PUT", { name: NAME, value: "x" })).status).toBe(405);
    await n.call("POST", { name: NAME, value: "1" });
    await n.call("POST", { name: NAME, value: "2" });
    expect(await reason(await n.call("POST", { name: NAME, value: "3" }))).toEqual([507, "at most 2 challenge values are held; remove some first"]);
    expect((await n.call("POST", { name: NAME, value: "2" })).status).toBe(200); // a refresh is not a new value
    expect(n.changes).toHaveLength(3);
    const off = node(TEST_ZONE_TOML);
    expect((await off.call("POST", { name: NAME, value: "x" })).status).toBe(403);
  });
});

describe("the director's fallback in metrics and status", () => {
  it("answers the fallback when every edge is down and says so", async () => {
    const toml = `${TEST_ZONE_TOML.replace('default = ["us-sea"]', 'default = ["us-sea"]\nfallback = { ipv4 = ["198.51.100.1"], ipv6 = ["2001:db8:ff::1"] }')
      .replaceAll("lon = -0.13", 'lon = -0.13\nurl = "http://lon.test"')
      .replace("lon = -122.33", 'lon = -122.33\nurl = "http://sea.test"')
      .replace("lon = 116.4", 'lon = 116.4\nurl = "http://pek.test"')}\n[admin]\ntoken = "${TOKEN}"\n`;
    const n = node(toml);
    await n.parts.monitor.probeAll(); // every probe fails: every edge down
    const a = n.ask("director.geo.example.org", "A");
    expect(a.answers!.map((x) => (x as { data: string }).data)).toEqual(["198.51.100.1"]);
    expect(n.ask("director.geo.example.org", "AAAA").answers!.map((x) => (x as { data: string }).data)).toEqual(["2001:db8:ff::1"]);
    const metrics = await (await n.parts.fetch(new Request("http://dns/metrics", { headers: { authorization: `Bearer ${TOKEN}` } }))).text();
    expect(metrics).toContain('parrot_dns_fallback{family="ipv4"} 1');
    expect(metrics).toContain("parrot_dns_fail_open 0");
    expect(metrics).toContain('parrot_dns_edge_in_answers{edge="gb-lon"} 0');
    expect(metrics).toContain('parrot_dns_edge_anycast{edge="gb-lon",state="unknown"} 1');
    const status = (await (await n.parts.fetch(new Request("http://dns/status.json"))).json()) as { fallback: boolean; failOpen: boolean; edges: { anycast: string }[] };
    expect([status.fallback, status.failOpen, status.edges[0]!.anycast]).toEqual([true, false, "-"]);
  });
});
