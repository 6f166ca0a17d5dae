/**
 * Whether and how a response is stored (RFC 9111 §3, RFC 9213, RFC 5861, the operator's rule), and what a stored
 * entry allows when a request comes (§4). Pure: the engine passes headers and times in.
 */
import type { EdgeConfig, Rule } from "../config/edge-schema.ts";
import { deltaSeconds, fieldNames, parseDirectives, type Directives } from "./directives.ts";
import { parseSfDictionary } from "./structured.ts";
import { correctedInitialAge, freshnessLifetime, parseHttpDate, UNDERSTOOD_STATUSES } from "./freshness.ts";
import { currentAgeOf, entryHeaders, type EntryMeta } from "./entry.ts";
import { endToEnd, headerPairs, mergeNotModified } from "./headers.ts";
import { varyFields } from "./key.ts";

/**
 * Targeted fields for this CDN's caches (RFC 9213): stored with the entry and passed on to another tier (a request
 * that came through one, CDN-Loop), so an edge filling from a shield obeys what the shield obeys; removed from every
 * answer to a client (deliver.ts).
 */
export const CDN_ONLY_HEADERS = ["cdn-cache-control"];

/** The directives this cache obeys: CDN-Cache-Control when present (RFC 9213), else Cache-Control. */
export function responseDirectives(headers: Headers, rule?: Rule): Directives {
  const ignored = rule?.ignore_origin_headers ?? [];
  if (ignored.includes("cache-control")) return new Map();
  const targeted = headers.get("cdn-cache-control");
  if (targeted !== null && !ignored.includes("cdn-cache-control")) {
    const directives = targetedDirectives(targeted);
    if (directives) return directives;
  }
  return parseDirectives(headers.get("cache-control"));
}

/** Directives whose value must be an integer in a targeted field. */
const INTEGER_DIRECTIVES = ["max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"];

/**
 * A targeted field (RFC 9213 §2.1) is a Structured Fields dictionary: one that does not parse, or whose
 * freshness directives are not integers, is ignored whole, and Cache-Control applies instead.
 */
function targetedDirectives(value: string): Directives | undefined {
  const dict = parseSfDictionary(value);
  if (!dict) return undefined;
  const out: Directives = new Map();
  for (const [name, item] of dict) {
    if (INTEGER_DIRECTIVES.includes(name)) {
      if (typeof item !== "number" || !Number.isInteger(item) || item < 0) return undefined;
      out.set(name, String(item));
    } else if (item === true) out.set(name, true);
    else if (typeof item === "string") out.set(name, item);
    else if (typeof item === "number") out.set(name, String(item));
    else if (Array.isArray(item)) out.set(name, item.map((x) => (typeof x === "object" && "token" in x ? x.token : String(x))).join(", "));
    else if (typeof item === "object" && "token" in item) out.set(name, item.token);
  }
  return out;
}

/** A request's directives; `Pragma: no-cache` counts as `no-cache` when there is no Cache-Control. */
export function requestDirectives(headers: Headers): Directives {
  const cc = headers.get("cache-control");
  if (cc === null && /(^|,)\s*no-cache\s*(,|$)/i.test(headers.get("pragma") ?? "")) return new Map([["no-cache", true]]);
  return parseDirectives(cc);
}

export interface StoreInput {
  /** Primary key the entry will answer. */
  key: string;
  requestHeaders: Headers;
  status: number;
  statusText: string;
  /** The origin's response headers. */
  headers: Headers;
  requestTime: number;
  responseTime: number;
  rule?: Rule;
  edge: EdgeConfig;
}

export type StoreDecision =
  | { store: false; reason: string }
  | { store: true; meta: EntryMeta; varyFields: string[]; /** seconds the store must keep it */ physicalTtl: number };

/** Decides storage and builds the entry's metadata. */
export function decideStorage(input: StoreInput): StoreDecision {
  const { status, rule, edge } = input;
  const no = (reason: string): StoreDecision => ({ store: false, reason });
  const ignored = new Set(rule?.ignore_origin_headers ?? []);
  const headers = new Headers(input.headers);
  // A missing or invalid Date: the response time stands in (RFC 9110 §6.6.1 lets a recipient add one).
  if (parseHttpDate(headers.get("date")) === undefined) headers.set("date", new Date(input.responseTime).toUTCString());

  if (status < 200 || status === 206 || status === 304) return no("status");
  const reqCC = requestDirectives(input.requestHeaders);
  if (reqCC.has("no-store")) return no("request no-store");

  const cc = responseDirectives(headers, rule);
  const understood = UNDERSTOOD_STATUSES.has(status);
  if (cc.has("must-understand")) {
    if (!understood) return no("must-understand");
  } else if (cc.has("no-store")) return no("no-store");
  if (cc.has("private") && fieldNames(cc.get("private")).length === 0) return no("private");
  if (
    input.requestHeaders.has("authorization") &&
    !(cc.has("public") || cc.has("s-maxage") || cc.has("must-revalidate"))
  )
    return no("authorization");

  const fields = ignored.has("vary") ? [] : varyFields(headers.get("vary"));
  if (fields[0] === "*") return no("vary *");

  const hasCookie = headers.has("set-cookie") && !ignored.has("set-cookie");
  if (hasCookie && edge.set_cookie === "bypass") return no("set-cookie");

  const defaultTtl = rule?.ttl?.[String(status)] ?? rule?.ttl?.["any"];
  let lifetime: number;
  if (rule?.force_ttl !== undefined) lifetime = rule.force_ttl;
  else {
    const f = freshnessLifetime(status, headers, cc, {
      heuristicFraction: edge.heuristic_fraction,
      heuristicMax: edge.heuristic_max,
      defaultTtl,
      ignoreExpires: ignored.has("expires"),
    });
    // A no-cache response is stored to be revalidated every time, even without freshness information.
    if (f === undefined && !(cc.get("no-cache") === true && (headers.has("etag") || headers.has("last-modified"))))
      return no("no freshness");
    lifetime = f?.lifetime ?? 0;
  }

  const noCacheFields = fieldNames(cc.get("no-cache"));
  const noCache = cc.has("no-cache") && noCacheFields.length === 0 && rule?.force_ttl === undefined;
  const mustRevalidate =
    noCache || cc.has("must-revalidate") || cc.has("proxy-revalidate") || cc.has("s-maxage");
  const staleWhileRevalidate = mustRevalidate
    ? 0
    : Math.max(deltaSeconds(cc.get("stale-while-revalidate")) ?? 0, rule?.stale_while_revalidate ?? 0);
  const staleIfError = mustRevalidate
    ? 0
    : Math.max(deltaSeconds(cc.get("stale-if-error")) ?? 0, rule?.stale_if_error ?? 0);

  // Fields that must not be replayed from the cache: private="…", no-cache="…", cookies when stripping.
  const drop = [...fieldNames(cc.get("private")), ...noCacheFields];
  if (hasCookie && edge.set_cookie === "strip") drop.push("set-cookie");
  const stored = endToEnd(headers, drop);

  const etag = headers.get("etag") ?? undefined;
  const lastModified = headers.get("last-modified") ?? undefined;
  const initialAge = correctedInitialAge(headers, input.requestTime, input.responseTime);
  const meta: EntryMeta = {
    kind: "entry",
    key: input.key,
    status,
    statusText: input.statusText,
    headers: headerPairs(stored),
    requestTime: input.requestTime,
    responseTime: input.responseTime,
    initialAge,
    lifetime,
    staleWhileRevalidate,
    staleIfError,
    noCache,
    mustRevalidate,
    etag,
    lastModified,
    tags: cacheTags(headers),
  };
  const length = Number(headers.get("content-length"));
  if (headers.has("content-length") && Number.isFinite(length)) {
    if (length > edge.max_object_bytes) return no("too large");
    meta.size = length;
  }
  const fresh = noCache ? 0 : Math.max(0, lifetime - initialAge);
  const stale = Math.max(staleWhileRevalidate, staleIfError);
  // Nothing could ever be served from an entry that is stale on arrival, may not be served stale and has no validators.
  if (fresh === 0 && stale === 0 && !etag && !lastModified) return no("stale on arrival");
  return { store: true, meta, varyFields: fields, physicalTtl: physicalTtl(fresh, stale, edge.keep) };
}

/**
 * The storage decision for a stored entry's meta with a validation's headers merged in (a 304, or the 206 that
 * validates a sliced object's record; RFC 9111 §3.2, §4.3.4).
 */
export function decideRefreshed(
  meta: EntryMeta,
  validation: { headers: Headers; requestTime: number; responseTime: number },
  rule: Rule | undefined,
  edge: EdgeConfig,
): StoreDecision {
  return decideStorage({
    key: meta.key,
    requestHeaders: new Headers(),
    status: meta.status,
    statusText: meta.statusText,
    headers: mergeNotModified(entryHeaders(meta), validation.headers),
    requestTime: validation.requestTime,
    responseTime: validation.responseTime,
    rule,
    edge,
  });
}

/**
 * How long the store keeps an entry: its remaining freshness, its stale windows, then `keep` (nginx's `inactive`)
 * so that a stale entry can still be revalidated, or be reported EXPIRED rather than MISS.
 */
export function physicalTtl(fresh: number, stale: number, keep: number): number {
  return Math.max(1, Math.ceil(fresh + stale + keep));
}

/** Cache-Tag / Surrogate-Key values (comma- or space-separated), for purge by tag. */
function cacheTags(headers: Headers): string[] {
  const raw = [headers.get("cache-tag"), headers.get("surrogate-key")].filter(Boolean).join(",");
  return [...new Set(raw.split(/[\s,]+/).filter(Boolean))];
}

/** How a stored entry stands for one request. */
export type Verdict =
  | { use: "fresh"; ttl: number }
  /** stale, and stale-while-revalidate lets it be served while refreshing */
  | { use: "stale-while-revalidate"; ttl: number }
  /** stale within what the client's max-stale accepts */
  | { use: "stale-ok"; ttl: number }
  /** must go to the origin (conditionally when validators exist); `forced` when the client asked for it */
  | { use: "revalidate"; ttl: number; forced: boolean };

/** Judges a stored entry against the request's directives at `now`. */
export function judge(meta: EntryMeta, reqCC: Directives, edge: EdgeConfig, now: number): Verdict {
  const age = currentAgeOf(meta, now);
  const ttl = Math.floor((meta.noCache ? 0 : meta.lifetime) - age);
  const honourClient = edge.client_no_cache === "revalidate";
  if (honourClient && reqCC.has("no-cache")) return { use: "revalidate", ttl, forced: true };
  const clientMaxAge = honourClient ? deltaSeconds(reqCC.get("max-age")) : undefined;
  if (clientMaxAge !== undefined && age > clientMaxAge) return { use: "revalidate", ttl, forced: true };
  const minFresh = honourClient ? (deltaSeconds(reqCC.get("min-fresh")) ?? 0) : 0;
  const remaining = meta.noCache ? 0 : meta.lifetime - age;
  if (remaining > minFresh) return { use: "fresh", ttl };
  if (remaining > 0) return { use: "revalidate", ttl, forced: true }; // fresh, but not as fresh as min-fresh asks
  if (meta.mustRevalidate) return { use: "revalidate", ttl, forced: false };
  if (reqCC.has("max-stale")) {
    const maxStale = reqCC.get("max-stale") === true ? Infinity : deltaSeconds(reqCC.get("max-stale"));
    if (maxStale !== undefined && -ttl <= maxStale) return { use: "stale-ok", ttl };
  }
  if (meta.staleWhileRevalidate > 0 && -remaining <= meta.staleWhileRevalidate) return { use: "stale-while-revalidate", ttl };
  return { use: "revalidate", ttl, forced: false };
}

/** Whether stale-if-error lets this entry answer when the origin failed. */
export function staleIfErrorAllows(meta: EntryMeta, now: number): boolean {
  if (meta.mustRevalidate) return false;
  return currentAgeOf(meta, now) - meta.lifetime <= meta.staleIfError;
}

/** Origin outcomes RFC 5861 counts as errors: no response, or 500, 502, 503, 504. */
export function isOriginError(status: number | undefined): boolean {
  return status === undefined || status === 500 || status === 502 || status === 503 || status === 504;
}
