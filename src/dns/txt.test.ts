import { describe, expect, it } from "vitest";
import { formatTxt, splitTxt } from "./txt.ts";

const T = "ip %ip %af city %ci country %cc %co state %cn region %re name %na as %as";

describe("formatTxt", () => {
  it("prints like the seed: lowercase, alpha-3, as-prefixed AS, unknown for missing", () => {
    const info = { city: "Gavardo", country: "IT", continent: "EU", region: "09", asn: 206701 };
    expect(formatTxt(T, { ip: "185.178.92.254", family: 4, info })).toBe(
      "ip 185.178.92.254 v4 city gavardo country it ita state eu region 09 name unknown as as206701",
    );
  });

  it("lowercases ASCII only and knows v6, %%, location", () => {
    const out = formatTxt("%ci %af %% %lat %lon %loc %ip6", { ip: "2001:db8::1", family: 6, info: { city: "LINKÖPING", lat: 58.4167, lon: -15.6167 } });
    expect(out).toBe("linkÖping v6 % 58.4167 -15.6167 58 25 0.12 N 15 37 0.12 W 2001:db8::1");
  });

  it("prints unknown for every field of an empty record", () => {
    expect(formatTxt(T, { ip: "192.0.2.1", family: 4, info: {} })).toBe(
      "ip 192.0.2.1 v4 city unknown country unknown unknown state unknown region unknown name unknown as unknown",
    );
  });
});

describe("splitTxt", () => {
  it("splits at 255 bytes without cutting a UTF-8 character", () => {
    expect(splitTxt("a".repeat(600)).map((b) => b.length)).toEqual([255, 255, 90]);
    const parts = splitTxt("a".repeat(254) + "ö" + "b");
    expect(parts.map((b) => b.length)).toEqual([254, 3]);
    expect(splitTxt("")).toHaveLength(1);
  });
});
