import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { checkCityDatabase } from "./city-check.ts";

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url)));

describe("checkCityDatabase", () => {
  it("takes a City database whose sampled records hold countries and coordinates", () => {
    const c = checkCityDatabase(fixture("GeoIP2-City-Test.mmdb"));
    expect(c.databaseType).toBe("GeoIP2-City");
    expect(c.sampled).toBeGreaterThan(100);
    expect(c.located).toBeGreaterThan(0);
  });

  it("refuses another kind of database, garbage, and a damaged tree, saying why", () => {
    expect(() => checkCityDatabase(fixture("GeoLite2-ASN-Test.mmdb"))).toThrow("database_type is GeoLite2-ASN: a City database is needed");
    expect(() => checkCityDatabase(new Uint8Array(4096).fill(7))).toThrow("not a MaxMind DB");
    const damaged = fixture("GeoIP2-City-Test.mmdb");
    damaged.fill(9, 100, 4000);
    expect(() => checkCityDatabase(damaged)).toThrow(/lookups fail|no record/);
  });
});
