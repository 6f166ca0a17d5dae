import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { parseIp } from "../net/ip.ts";
import { testGeoIp } from "../../test/support/dns-server.ts";
import { TEST_ZONE_TOML } from "../../test/support/dns-zone.ts";
import { TYPE } from "./codes.ts";
import { directorAnswer, directorCache, serviceSets, type DirectorHealth } from "./director.ts";
import { parseClientSubnet } from "./ecs.ts";
import { buildZone } from "./zone.ts";

const zone = buildZone(parseConfig(TEST_ZONE_TOML));
const geoip = testGeoIp();
const addresses = (tails: Uint8Array[]) => tails.map((t) => Array.from(t.subarray(10)).join("."));

/** Health where the named edges are out; the version moves when the set changes. */
function health(out: string[] = []): DirectorHealth & { out: string[]; version: number } {
  return {
    out,
    version: 0,
    answerable(edges) {
      const up = edges.filter((e) => !this.out.includes(e.name));
      return up.length ? { edges: up, failOpen: false } : { edges, failOpen: true };
    },
  };
}

describe("the director", () => {
  it("answers the nearest edges for the client and caches per client and health version", () => {
    const h = health();
    const c = directorCache();
    const ctx = { zone, geoip, health: h };
    const london = parseIp("81.2.69.142");
    const first = directorAnswer(c, ctx, TYPE.A, undefined, london);
    expect(addresses(first.tails)).toEqual(["192.0.2.21", "192.0.2.22"]);
    expect(first.tailored).toBe(true);
    expect(directorAnswer(c, ctx, TYPE.A, undefined, london)).toBe(first);
    h.out.push("gb-lon");
    h.version++;
    expect(addresses(directorAnswer(c, ctx, TYPE.A, undefined, london).tails)).toEqual(["192.0.2.22", "192.0.2.23"]);
  });

  it("fails open per family when nothing is in service", () => {
    const h = health(["gb-lon", "us-sea", "cn-pek"]);
    const sets = serviceSets(directorCache(), { zone, geoip, health: h });
    expect([sets.failOpen4, sets.failOpen6, sets.v4.length]).toEqual([true, true, 3]);
  });

  it("locates by ECS; ECS /0 is not tailored and answers the default set", () => {
    const c = directorCache();
    const ctx = { zone, geoip };
    const ecs = parseClientSubnet(Uint8Array.from([0, 1, 24, 0, 175, 16, 199]));
    if (ecs === "malformed") throw new Error("bad test ECS");
    expect(addresses(directorAnswer(c, ctx, TYPE.A, ecs, parseIp("81.2.69.142")).tails)[0]).toBe("192.0.2.23");
    const zero = parseClientSubnet(Uint8Array.from([0, 1, 0, 0]));
    if (zero === "malformed") throw new Error("bad test ECS");
    const untailored = directorAnswer(c, ctx, TYPE.A, zero, parseIp("81.2.69.142"));
    expect([untailored.tailored, untailored.scope, addresses(untailored.tails)[0]]).toEqual([false, 0, "192.0.2.22"]);
  });

  it("fills the TXT from the GeoIP data, scoped to the database's block", () => {
    const txt = directorAnswer(directorCache(), { zone, geoip }, TYPE.TXT, undefined, parseIp("89.160.20.112"));
    expect(new TextDecoder().decode(txt.tails[0]!.subarray(11))).toBe(
      "ip 89.160.20.112 v4 city linköping country se swe state eu region e name bredband2 ab as as29518",
    );
    expect(txt.scope).toBeGreaterThan(0);
  });
});

describe("the director's fallback", () => {
  const withFallback = buildZone(
    parseConfig(TEST_ZONE_TOML.replace('default = ["us-sea"]', 'default = ["us-sea"]\nfallback = { ipv4 = ["198.51.100.1"] }')),
  );

  it("answers the fallback addresses of a family with too few edges in service, for every client alike", () => {
    const h = health(["gb-lon", "us-sea", "cn-pek"]);
    const c = directorCache();
    const ctx = { zone: withFallback, geoip, health: h };
    const a = directorAnswer(c, ctx, TYPE.A, undefined, parseIp("81.2.69.142"));
    expect([addresses(a.tails), a.tailored, a.scope, a.sites]).toEqual([["198.51.100.1"], false, 0, []]);
    expect(directorAnswer(c, ctx, TYPE.A, undefined, parseIp("175.16.199.1"))).toBe(a);
    // No IPv6 fallback: that family fails open to every edge, as without a fallback.
    const aaaa = directorAnswer(c, ctx, TYPE.AAAA, undefined, parseIp("81.2.69.142"));
    expect(aaaa.sites!.map((s) => s.name)).toEqual(["gb-lon", "us-sea"]);
    expect(serviceSets(c, ctx)).toMatchObject({ fallback4: true, fallback6: false, failOpen6: true });
    // Edges back: the nearest again.
    h.out.length = 0;
    h.version++;
    expect(addresses(directorAnswer(c, ctx, TYPE.A, undefined, parseIp("81.2.69.142")).tails)).toEqual(["192.0.2.21", "192.0.2.22"]);
  });
});
