/**
 * RFC 9111 arithmetic: age (§4.2.3), freshness lifetime (§4.2.1, heuristics §4.2.2) and the stale allowances of
 * RFC 5861, with CDN-Cache-Control (RFC 9213) taking precedence over Cache-Control. Pure: times are passed in.
 */
import { deltaSeconds, type Directives } from "./directives.ts";

/** Statuses a cache may store without explicit freshness (RFC 9110 §15.1). */
export const HEURISTICALLY_CACHEABLE = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]);

/** Statuses whose semantics this cache understands (for `must-understand`). */
export const UNDERSTOOD_STATUSES = new Set([
  200, 203, 204, 206, 300, 301, 302, 303, 307, 308, 400, 403, 404, 405, 410, 414, 451, 500, 501, 502, 503, 504,
]);

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
// Names are matched case-insensitively: the form is strict, the case of "Thu" or "GMT" is not worth a miss.
const IMF_FIXDATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) ([a-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/i;
const RFC850 = /^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d{2})-([a-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/i;
const ASCTIME = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([a-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/i;

/**
 * Parses an HTTP-date strictly (RFC 9110 §5.6.7: IMF-fixdate, or the obsolete RFC 850 and asctime forms);
 * `undefined` when absent or in any other form — such an Expires means "already expired".
 * `now` places RFC 850's two-digit years: never more than 50 years ahead.
 */
export function parseHttpDate(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  let parts: { day: string; mon: string; year: number; time: [string, string, string] } | undefined;
  let m: RegExpExecArray | null;
  if ((m = IMF_FIXDATE.exec(value))) {
    parts = { day: m[1]!, mon: m[2]!, year: Number(m[3]), time: [m[4]!, m[5]!, m[6]!] };
  } else if ((m = RFC850.exec(value))) {
    const thisYear = new Date(now).getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + Number(m[3]);
    if (year > thisYear + 50) year -= 100;
    parts = { day: m[1]!, mon: m[2]!, year, time: [m[4]!, m[5]!, m[6]!] };
  } else if ((m = ASCTIME.exec(value))) {
    parts = { day: m[2]!.trim(), mon: m[1]!, year: Number(m[6]), time: [m[3]!, m[4]!, m[5]!] };
  }
  if (!parts) return undefined;
  const month = MONTHS.indexOf(parts.mon[0]!.toUpperCase() + parts.mon.slice(1).toLowerCase());
  const [h, min, sec] = parts.time.map(Number) as [number, number, number];
  if (month < 0 || h > 23 || min > 59 || sec > 60) return undefined;
  const ms = Date.UTC(parts.year, month, Number(parts.day), h, min, sec);
  return new Date(ms).getUTCDate() === Number(parts.day) ? ms : undefined;
}

/** The Age header's value in seconds (first of a list; invalid → 0; huge → 2^31). */
export function parseAge(value: string | null): number {
  if (!value) return 0;
  return deltaSeconds(value.split(",")[0]!.trim()) ?? 0;
}

/**
 * corrected_initial_age of §4.2.3, in seconds: what the response's age already was when it arrived.
 * `requestTime`/`responseTime` are ms since the epoch on this cache's clock.
 */
export function correctedInitialAge(headers: Headers, requestTime: number, responseTime: number): number {
  const date = parseHttpDate(headers.get("date")) ?? responseTime;
  const apparentAge = Math.max(0, (responseTime - date) / 1000);
  const responseDelay = Math.max(0, (responseTime - requestTime) / 1000);
  const correctedAgeValue = parseAge(headers.get("age")) + responseDelay;
  return Math.max(apparentAge, correctedAgeValue);
}

/** current_age in seconds at `now`. */
export function currentAge(initialAge: number, responseTime: number, now: number): number {
  return initialAge + Math.max(0, (now - responseTime) / 1000);
}

export interface FreshnessOptions {
  heuristicFraction: number;
  heuristicMax: number;
  /** Operator freshness when the origin gives none, by status (proxy_cache_valid). */
  defaultTtl?: number;
  /** Ignore Expires (operator rule). */
  ignoreExpires?: boolean;
}

/**
 * The freshness lifetime in seconds, or `undefined` when the response has neither explicit nor heuristic freshness.
 * s-maxage > max-age > Expires − Date > operator default > heuristic (10 % of the time since Last-Modified).
 * An invalid max-age or Expires makes the response stale at once (the restrictive reading RFC 9111 allows).
 */
export function freshnessLifetime(
  status: number,
  headers: Headers,
  cc: Directives,
  opts: FreshnessOptions,
): { lifetime: number; explicit: boolean } | undefined {
  if (cc.has("s-maxage")) return { lifetime: deltaSeconds(cc.get("s-maxage")) ?? 0, explicit: true };
  if (cc.has("max-age")) return { lifetime: deltaSeconds(cc.get("max-age")) ?? 0, explicit: true };
  const expiresRaw = opts.ignoreExpires ? null : headers.get("expires");
  if (expiresRaw !== null) {
    const expires = parseHttpDate(expiresRaw);
    const date = parseHttpDate(headers.get("date"));
    if (expires === undefined) return { lifetime: 0, explicit: true };
    // Without a Date header, the response time stands in for it; the caller passes it as Date when absent.
    return { lifetime: Math.max(0, Math.floor((expires - (date ?? expires)) / 1000)), explicit: true };
  }
  if (opts.defaultTtl !== undefined) return { lifetime: opts.defaultTtl, explicit: false };
  if (HEURISTICALLY_CACHEABLE.has(status) || cc.has("public")) {
    const lastModified = parseHttpDate(headers.get("last-modified"));
    const date = parseHttpDate(headers.get("date"));
    if (lastModified !== undefined && date !== undefined && date > lastModified) {
      const lifetime = Math.floor(((date - lastModified) / 1000) * opts.heuristicFraction);
      return { lifetime: Math.min(lifetime, opts.heuristicMax), explicit: false };
    }
    if (cc.has("public")) return { lifetime: 0, explicit: false };
  }
  return undefined;
}
