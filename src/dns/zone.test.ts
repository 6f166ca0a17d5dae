import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { TEST_ZONE_TOML } from "../../test/support/dns-zone.ts";
import { buildZone } from "./zone.ts";

const zoneOf = (extra: string, replace?: [string, string]) =>
  buildZone(parseConfig((replace ? TEST_ZONE_TOML.replace(...replace) : TEST_ZONE_TOML) + extra));

describe("the zone from cdn.toml", () => {
  it("knows every name: owners, their ancestors (empty non-terminals) and the director", () => {
    const z = zoneOf("");
    for (const n of ["geo.example.org", "a.b.deep.geo.example.org", "b.deep.geo.example.org", "deep.geo.example.org", "director.geo.example.org"])
      expect(z.names.has(n)).toBe(true);
    expect(z.names.has("nope.geo.example.org")).toBe(false);
    expect(z.negativeTtl).toBe(30);
    expect(z.nodes.get("geo.example.org")!.get("NS")).toHaveLength(2);
    expect(z.sites.map((s) => s.name)).toEqual(["gb-lon", "us-sea", "cn-pek"]);
  });

  it("refuses a config that contradicts itself, naming the field", () => {
    expect(() => zoneOf("", ['{ name = "ns1", type = "A", value = "192.0.2.53" }', '{ name = "www", type = "A", value = "192.0.2.53" }'])).toThrow(
      /www.geo.example.org: a CNAME cannot share its name/,
    );
    expect(() => zoneOf("", ['value = "192.0.2.53"', 'value = "not-an-address"'])).toThrow(/dns.records ns1 A: not an IPv4 address/);
    expect(() => zoneOf("", ['default = ["us-sea"]', 'default = ["nowhere"]'])).toThrow(/dns.director.default: no edge named nowhere/);
    expect(() => zoneOf("", ['{ name = "ns1", type', '{ name = "director", type'])).toThrow(/dns.director.name director: also named in dns.records/);
    expect(() => zoneOf(`\n[[edges]]\nname = "gb-lon"\nlat = 1\nlon = 1\n`)).toThrow(/edges: name gb-lon appears twice/);
  });
});
