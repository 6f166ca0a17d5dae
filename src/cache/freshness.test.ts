import { describe, expect, it } from "vitest";
import { parseDirectives } from "./directives.ts";
import { correctedInitialAge, currentAge, freshnessLifetime, parseAge, parseHttpDate } from "./freshness.ts";

const opts = { heuristicFraction: 0.1, heuristicMax: 86_400 };
const at = (iso: string) => Date.parse(iso);
const lifetime = (status: number, h: Record<string, string>, o: Partial<typeof opts & { defaultTtl: number }> = {}) => {
  const headers = new Headers(h);
  return freshnessLifetime(status, headers, parseDirectives(headers.get("cache-control")), { ...opts, ...o });
};

describe("freshness lifetime (RFC 9111 §4.2.1)", () => {
  it("prefers s-maxage over max-age over Expires", () => {
    const date = "Thu, 01 Jan 2026 00:00:00 GMT";
    const expires = "Thu, 01 Jan 2026 01:00:00 GMT";
    expect(lifetime(200, { "cache-control": "max-age=10, s-maxage=20", date, expires })?.lifetime).toBe(20);
    expect(lifetime(200, { "cache-control": "max-age=10", date, expires })?.lifetime).toBe(10);
    expect(lifetime(200, { date, expires })?.lifetime).toBe(3600);
  });

  it("treats an invalid Expires, or an invalid max-age, as already stale", () => {
    expect(lifetime(200, { date: "Thu, 01 Jan 2026 00:00:00 GMT", expires: "0" })?.lifetime).toBe(0);
    expect(lifetime(200, { "cache-control": "max-age=abc" })?.lifetime).toBe(0);
    expect(lifetime(200, { "cache-control": "max-age=-5" })?.lifetime).toBe(0);
  });

  it("uses the operator default before the heuristic, and the heuristic only for heuristically cacheable statuses", () => {
    const h = { date: "Thu, 11 Jan 2026 00:00:00 GMT", "last-modified": "Thu, 01 Jan 2026 00:00:00 GMT" };
    expect(lifetime(200, h)).toEqual({ lifetime: 86_400, explicit: false }); // 10 % of 10 days, capped at a day
    expect(lifetime(200, { ...h, "last-modified": "Sat, 10 Jan 2026 14:00:00 GMT" })?.lifetime).toBe(3600);
    expect(lifetime(200, h, { defaultTtl: 5 })?.lifetime).toBe(5);
    expect(lifetime(302, h)).toBeUndefined();
    expect(lifetime(299, { "cache-control": "max-age=30" })?.lifetime).toBe(30); // unknown status, explicit freshness
    expect(lifetime(200, {})).toBeUndefined();
  });
});

describe("age (RFC 9111 §4.2.3)", () => {
  it("parses Age leniently: first value, invalid as 0, huge capped", () => {
    expect(parseAge("30")).toBe(30);
    expect(parseAge("30, 60")).toBe(30);
    expect(parseAge("-3")).toBe(0);
    expect(parseAge("abc")).toBe(0);
    expect(parseAge("99999999999")).toBe(2 ** 31);
  });

  it("takes the larger of apparent age and corrected Age plus response delay", () => {
    const req = at("2026-01-01T00:00:00Z");
    const res = at("2026-01-01T00:00:02Z");
    const apparent = new Headers({ date: "Wed, 31 Dec 2025 23:59:00 GMT" });
    expect(correctedInitialAge(apparent, req, res)).toBe(62);
    const withAge = new Headers({ date: "Thu, 01 Jan 2026 00:00:02 GMT", age: "100" });
    expect(correctedInitialAge(withAge, req, res)).toBe(102);
    const futureDate = new Headers({ date: "Thu, 01 Jan 2026 01:00:00 GMT" });
    expect(correctedInitialAge(futureDate, req, res)).toBe(2);
    expect(currentAge(10, res, res + 5_000)).toBe(15);
  });
});

describe("HTTP-date parsing (RFC 9110 §5.6.7)", () => {
  const now = Date.parse("2026-11-25T00:00:00Z");
  it("reads the three forms", () => {
    const t = Date.parse("2050-08-18T02:01:18Z");
    expect(parseHttpDate("Thu, 18 Aug 2050 02:01:18 GMT", now)).toBe(t);
    expect(parseHttpDate("Thursday, 18-Aug-50 02:01:18 GMT", now)).toBe(t);
    expect(parseHttpDate("Thu Aug 18 02:01:18 2050", now)).toBe(t);
    expect(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", now)).toBe(Date.parse("1994-11-06T08:49:37Z"));
    expect(parseHttpDate("Sun Nov  6 08:49:37 1994", now)).toBe(Date.parse("1994-11-06T08:49:37Z"));
  });

  it("refuses everything else", () => {
    for (const bad of [
      "Thu, 18 Aug 2050 02:01:18 UTC",
      "Thu 18 Aug 2050 02:01:18 GMT",
      "Thu, 18  Aug  2050 02:01:18 GMT",
      "Thu, 18-Aug-2050 02:01:18 GMT",
      "Thu, 18 Aug 2050 2:01:18 GMT",
      "Thu, 31 Feb 2050 02:01:18 GMT",
      "0",
      "2050-08-18T02:01:18Z",
    ]) {
      expect(parseHttpDate(bad, now), bad).toBeUndefined();
    }
  });
});
