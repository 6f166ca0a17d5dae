import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { TEST_ZONE_TOML } from "../../test/support/dns-zone.ts";
import { RCODE, TYPE } from "./codes.ts";
import { encodeName } from "./names.ts";
import { buildPlan, planCache, planFor } from "./plan.ts";
import { tailType } from "./records.ts";
import { buildZone } from "./zone.ts";

const zone = buildZone(parseConfig(TEST_ZONE_TOML));
const types = (parts: { tail: Uint8Array }[]) => parts.map((p) => tailType(p.tail));

describe("zone resolution", () => {
  it("follows a CNAME into the director, whose records come after it under the director's name", () => {
    const p = buildPlan(zone, "www.geo.example.org", TYPE.A);
    expect(types(p.answers)).toEqual([TYPE.CNAME]);
    expect(p.answers[0]!.owner).toBeNull(); // the query's own name
    expect([...p.director!]).toEqual([...encodeName("director.geo.example.org")]);
    expect(p.minTtl).toBe(30);
    expect(buildPlan(zone, "director.geo.example.org", TYPE.TXT).director).toBeNull();
    expect(buildPlan(zone, "director.geo.example.org", TYPE.MX).director).toBeUndefined();
  });

  it("tells NXDOMAIN (no such name) from NODATA (a name, an empty non-terminal, another type)", () => {
    expect(buildPlan(zone, "nope.geo.example.org", TYPE.A).rcode).toBe(RCODE.NXDOMAIN);
    for (const [name, type] of [["ns1.geo.example.org", TYPE.AAAA], ["deep.geo.example.org", TYPE.A], ["b.deep.geo.example.org", TYPE.TXT]] as const) {
      const p = buildPlan(zone, name, type);
      expect([p.rcode, p.answers.length]).toEqual([RCODE.NOERROR, 0]);
    }
  });

  it("adds in-zone glue to NS answers and answers ANY with one HINFO (RFC 8482)", () => {
    const ns = buildPlan(zone, "geo.example.org", TYPE.NS);
    expect(types(ns.answers)).toEqual([TYPE.NS, TYPE.NS]);
    expect(types(ns.additionals)).toEqual([TYPE.A]);
    expect(types(buildPlan(zone, "geo.example.org", TYPE.ANY).answers)).toEqual([TYPE.HINFO]);
    expect(types(buildPlan(zone, "director.geo.example.org", TYPE.ANY).answers)).toEqual([TYPE.HINFO]);
  });

  it("keeps plans per name and type, and answers names outside the zone's names with the shared NXDOMAIN plan", () => {
    const c = planCache(zone);
    expect(planFor(c, zone, "ns1.geo.example.org", TYPE.A)).toBe(planFor(c, zone, "ns1.geo.example.org", TYPE.A));
    expect(planFor(c, zone, "nope.geo.example.org", TYPE.A)).toBe(c.nxdomain);
    expect(types(c.soa)).toEqual([TYPE.SOA]);
  });
});
