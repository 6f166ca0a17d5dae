/**
 * What the cache stores beside each body: the project's own metadata, because the runtime's cache can neither serve
 * stale content nor revalidate (see ARCHITECTURE.md). Freshness is decided when storing and re-evaluated on reads.
 */

export interface EntryMeta {
  kind: "entry";
  /** The primary cache key this entry answers. */
  key: string;
  status: number;
  statusText: string;
  /** The end-to-end headers replayed to clients, in order, Set-Cookie lines separate. */
  headers: [string, string][];
  /** When the request that produced this response was sent, and when the response arrived (ms, cache clock). */
  requestTime: number;
  responseTime: number;
  /** corrected_initial_age (RFC 9111 §4.2.3), seconds. */
  initialAge: number;
  /** Freshness lifetime, seconds. */
  lifetime: number;
  /** Seconds past freshness during which stale-while-revalidate / stale-if-error allow a stale copy. */
  staleWhileRevalidate: number;
  staleIfError: number;
  /** The response must be validated before reuse (no-cache). */
  noCache: boolean;
  /** Never serve stale (must-revalidate, proxy-revalidate, s-maxage, no-cache). */
  mustRevalidate: boolean;
  etag?: string;
  lastModified?: string;
  /** Request header names and values this variant was chosen by (Vary). */
  vary?: [string, string][];
  /** Cache-Tag / Surrogate-Key values, for purging by tag. */
  tags: string[];
  /** Body length in bytes when known. */
  size?: number;
}

/** Stored at a primary key whose responses vary: which request headers pick the variant. */
export interface VaryMarker {
  kind: "vary";
  key: string;
  fields: string[];
  /** A fresh id per marker: variants are keyed under it, so replacing or deleting the marker orphans them all. */
  id: string;
}

/** The purge log's own record (its body is the log as JSON). */
export interface PurgeLogMeta {
  kind: "purge-log";
  key: string;
}

export type StoredMeta = EntryMeta | VaryMarker | PurgeLogMeta;

/** Seconds the entry stays fresh from `now` (negative once stale). */
export function remainingFreshness(meta: EntryMeta, now: number): number {
  if (meta.noCache) return -currentAgeOf(meta, now);
  return meta.lifetime - currentAgeOf(meta, now);
}

/** current_age (RFC 9111 §4.2.3) in seconds. */
export function currentAgeOf(meta: EntryMeta, now: number): number {
  return meta.initialAge + Math.max(0, (now - meta.responseTime) / 1000);
}

/** The headers to replay for a stored entry. */
export function entryHeaders(meta: EntryMeta): Headers {
  const h = new Headers();
  for (const [name, value] of meta.headers) h.append(name, value);
  return h;
}
