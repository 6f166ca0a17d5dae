import { describe, expect, it } from "vitest";
import { encodeName, inZoneKey, inZoneLabels, textKey } from "./names.ts";

describe("names", () => {
  it("keys a question's name in lowercase, and refuses bytes no zone file can hold", () => {
    expect(textKey(encodeName("WwW.Geo.Example.ORG"))).toBe("www.geo.example.org");
    expect(textKey(new Uint8Array([0]))).toBe("");
    expect(textKey(Uint8Array.from([3, 0x61, 0x00, 0x62, 0]))).toBeNull();
    expect(textKey(Uint8Array.from([3, 0x61, 0x2e, 0x62, 0]))).toBeNull(); // a dot inside a label
  });

  it("encodes names uncompressed and rejects bad ones", () => {
    expect([...encodeName("a.bc.")]).toEqual([1, 0x61, 2, 0x62, 0x63, 0]);
    expect([...encodeName(".")]).toEqual([0]);
    expect(() => encodeName("a..b")).toThrow(/empty or long label/);
    expect(() => encodeName(`${"x".repeat(64)}.org`)).toThrow(/empty or long label/);
    expect(() => encodeName(Array(130).fill("ab").join("."))).toThrow(/255/);
  });

  it("tells names inside the zone from names that only end alike", () => {
    expect(inZoneKey("geo.example.org", "geo.example.org", ".geo.example.org")).toBe(true);
    expect(inZoneKey("a.geo.example.org", "geo.example.org", ".geo.example.org")).toBe(true);
    expect(inZoneKey("xgeo.example.org", "geo.example.org", ".geo.example.org")).toBe(false);
    expect(inZoneLabels(["\u0000x", "GEO", "example", "org"], ["geo", "example", "org"])).toBe(true);
    expect(inZoneLabels(["example", "org"], ["geo", "example", "org"])).toBe(false);
  });
});
