import { describe, expect, it } from "vitest";
import { acceptedCodings, chooseCoding, codingsKey, typeMatches } from "./encoding.ts";

describe("content codings", () => {
  it("reduces Accept-Encoding to the coding the edge uses for it: br, gzip or none", () => {
    expect(acceptedCodings("gzip, deflate, br, zstd")).toEqual(["br", "zstd", "gzip", "deflate"]);
    expect(codingsKey("gzip, deflate, br, zstd")).toBe("br");
    expect(codingsKey("gzip, deflate, br")).toBe("br");
    expect(codingsKey("br;q=1.0, gzip;q=0.8, *;q=0.1")).toBe("br");
    expect(codingsKey("gzip;q=0, br")).toBe("br");
    expect(codingsKey("br;q=0, gzip, deflate")).toBe("gzip");
    expect(codingsKey("*;q=0, gzip")).toBe("gzip");
    expect(codingsKey("x-gzip")).toBe("gzip");
    expect(codingsKey("deflate, zstd")).toBe("");
    expect(codingsKey("identity")).toBe("");
    expect(codingsKey(null)).toBe("");
    expect(codingsKey("GZIP , BR")).toBe("br");
    expect(codingsKey("gzip;q=garbage")).toBe("");
  });

  it("compresses with br when accepted, else gzip, else not at all", () => {
    expect(chooseCoding(acceptedCodings("gzip, br"))).toBe("br");
    expect(chooseCoding(acceptedCodings("gzip, deflate"))).toBe("gzip");
    expect(chooseCoding(acceptedCodings("deflate"))).toBeUndefined();
    expect(chooseCoding(acceptedCodings(null))).toBeUndefined();
  });

  it("matches content types by family or exactly, parameters ignored", () => {
    expect(typeMatches("text/html; charset=utf-8", ["text/*"])).toBe(true);
    expect(typeMatches("application/json", ["text/*", "application/json"])).toBe(true);
    expect(typeMatches("image/png", ["text/*", "image/svg+xml"])).toBe(false);
    expect(typeMatches(null, ["text/*"])).toBe(false);
  });
});
