import { describe, expect, it } from "vitest";
import { deltaSeconds, fieldNames, parseDirectives } from "./directives.ts";

describe("Cache-Control directive parsing", () => {
  it("reads tokens and values case-insensitively", () => {
    const d = parseDirectives("Public, MAX-AGE=60, s-maxage=120");
    expect(d.get("public")).toBe(true);
    expect(d.get("max-age")).toBe("60");
    expect(d.get("s-maxage")).toBe("120");
  });

  it("accepts quoted values, with commas and escapes inside", () => {
    const d = parseDirectives('max-age="3600", no-cache="Set-Cookie, X-A", x="a\\"b"');
    expect(deltaSeconds(d.get("max-age"))).toBe(3600);
    expect(fieldNames(d.get("no-cache"))).toEqual(["set-cookie", "x-a"]);
    expect(d.get("x")).toBe('a"b');
  });

  it("keeps the first of duplicated directives", () => {
    const d = parseDirectives("max-age=10, max-age=3600");
    expect(d.get("max-age")).toBe("10");
  });

  it("survives malformed lists without throwing", () => {
    for (const bad of [",,,", "=", "max-age=", 'no-cache="unterminated', "  ,max-age = 5 ,", "a=b=c", "\u00ff=\u00ff"]) {
      expect(() => parseDirectives(bad)).not.toThrow();
    }
    expect(parseDirectives("  ,max-age = 5 ,").get("max-age")).toBe("5");
    expect(parseDirectives("max-age=").get("max-age")).toBe("");
  });

  it("treats non-digit delta-seconds as invalid and caps huge ones at 2^31", () => {
    expect(deltaSeconds("-1")).toBeUndefined();
    expect(deltaSeconds("1.5")).toBeUndefined();
    expect(deltaSeconds("abc")).toBeUndefined();
    expect(deltaSeconds("")).toBeUndefined();
    expect(deltaSeconds(true)).toBeUndefined();
    expect(deltaSeconds("99999999999999999999")).toBe(2 ** 31);
    expect(deltaSeconds("0")).toBe(0);
  });
});
