import { describe, expect, it } from "vitest";
import { describeGeoipStatus, geoipKeys, pushedRecord, rolledBackRecord, type GeoipVersion } from "./geoip-fleet.ts";

const v = (version: number): GeoipVersion => ({
  version,
  object: `v${version}.mmdb`,
  sha256: String(version).repeat(64).slice(0, 64),
  size: 100,
  database_type: "GeoIP2-City",
  built: 0,
  source: `city-${version}.mmdb`,
  at: 0,
  by: "op",
});

describe("GeoIP records", () => {
  it("a push keeps the version before; a rollback goes back to it once", () => {
    const first = pushedRecord(undefined, v(1), 1, "op");
    expect(first.previous).toBeNull();
    expect(rolledBackRecord(first, 2, "op")).toBe("version 1 has no version before it (pushed from city-1.mmdb)");
    const second = pushedRecord(first, v(2), 3, "op");
    const back = rolledBackRecord(second, 4, "op");
    expect(back).toMatchObject({ current: { version: 1 }, previous: null, reason: "rolled back from version 2" });
    expect(rolledBackRecord(undefined, 5, "op")).toBe("no GeoIP database pushed yet");
  });

  it("names each node's status key by role and escaped name, and describes it", () => {
    expect(geoipKeys.status("dns", "ns.1")).toBe("geoip-at.dns.ns_2e1");
    const record = pushedRecord(undefined, v(2), 1_000, "op");
    const s = { v: 1 as const, name: "ns1", role: "dns" as const, version: 2, sha256: v(2).sha256, target: 2, state: "applied" as const, reason: "", at: 3_000 };
    expect(describeGeoipStatus(s, record, 5_000)).toBe(`ok      GeoIP version 2 (${v(2).sha256.slice(0, 12)}): applied, asked for version 2, 2 s ago`);
    expect(describeGeoipStatus(undefined, record)).toBe("pending GeoIP: never reported (asked for version 2)");
  });
});
