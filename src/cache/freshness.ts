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

/** Parses an HTTP-date; `undefined` when absent or invalid. */
export function parseHttpDate(value: string | null): number | undefined {
  if (!value) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
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
