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
  /** A sliced object's record (no body here): its slices are entries of their own (src/cache/slices.ts). */
  sliced?: SlicedObject;
}

/** What an object record knows about a sliced object. */
export interface SlicedObject {
  /** The object's length in bytes. */
  total: number;
  sliceBytes: number;
  /** The version id (validators + total + slice size) its slices are keyed under. */
  version: string;
}

/** One slice of a sliced object, stored under its own key with the object's validators and total length. */
export interface SliceMeta {
  kind: "slice";
  /** The object's primary key: purges by URL, prefix and host reach every slice. */
  key: string;
  version: string;
  index: number;
  /** The slice's bytes in the object (inclusive). */
  start: number;
  end: number;
  total: number;
  etag?: string;
  lastModified?: string;
  /** When the slice arrived (ms): purges recorded later remove it. */
  responseTime: number;
  /** The object's Cache-Tag values, for purging by tag. */
  tags: string[];
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

export type StoredMeta = EntryMeta | VaryMarker | PurgeLogMeta | SliceMeta;

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
