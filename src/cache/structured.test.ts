import { describe, expect, it } from "vitest";
import { parseSfDictionary } from "./structured.ts";

describe("Structured Field dictionaries (for CDN-Cache-Control)", () => {
  it("parses the members a targeted cache field uses", () => {
    const d = parseSfDictionary('max-age=60, no-store, private="x", stale-if-error=10;a=1, list=(a "b" 1)');
    expect(d?.get("max-age")).toBe(60);
    expect(d?.get("no-store")).toBe(true);
    expect(d?.get("private")).toBe("x");
    expect(d?.get("list")).toEqual([{ token: "a" }, "b", 1]);
  });

  it("refuses text that is not a dictionary", () => {
    for (const bad of ["&&&&&", "max-age=", "Max-Age=1", "max-age=1,", "a=1 b=2", 'a="unterminated', "a=1.2345"]) {
      expect(parseSfDictionary(bad), bad).toBeUndefined();
    }
  });
});
