/**
 * Large objects in slices: the arithmetic of aligned byte ranges, the object's version (validators and total length)
 * that every slice must share, and which part of an object an answer needs. Pure: the edge's slice step
 * (src/edge/slices.ts) does the I/O.
 *
 * A sliced object is an object record (an entry with `sliced` set and no body) at the object's storage key, and one
 * entry per slice at `<storage key>#s=<version>:<index>`. The version id is derived from the validators and the total
 * length, so a new version of the object never finds the old version's slices, and a record rebuilt for the same
 * version (after an eviction) finds them again.
 */
import type { EdgeConfig, Rule } from "../config/edge-schema.ts";
import { isNotModified } from "./conditional.ts";
import { headerOf, type HeaderList } from "./headers.ts";
import type { EntryMeta, SliceMeta, SlicedObject } from "./entry.ts";
import { ifRangeMatches, parseRange, type ByteRange } from "./range.ts";

/** How a request's object is sliced: the slice size, and up to which size an object is stored whole. */
export interface SliceSettings {
  sliceBytes: number;
  /** A full GET of an object up to this size stores it whole (the probe's first slice and the rest, one entry). */
  thresholdBytes: number;
}

/** The slicing that applies to a request under `rule`; undefined when slicing is off (threshold 0). */
export function sliceSettings(edge: EdgeConfig, rule: Rule | undefined): SliceSettings | undefined {
  const threshold = rule?.slice_threshold_bytes ?? edge.slice_threshold_bytes;
  if (threshold === 0) return undefined;
  const sliceBytes = rule?.slice_bytes ?? edge.slice_bytes;
  // Whole objects above max_object_bytes are never stored: slice anything larger.
  return { sliceBytes, thresholdBytes: Math.max(sliceBytes, Math.min(threshold, edge.max_object_bytes)) };
}

/** A parsed Content-Range: a satisfied range of a known total, or `bytes *\/total` (unsatisfiable). */
export type ContentRange = { start: number; end: number; total: number } | { unsatisfied: true; total: number };

/** Parses `Content-Range: bytes a-b/total` or `bytes *\/total`; null for anything else (an unknown total too). */
export function parseContentRange(value: string | null): ContentRange | null {
  if (value === null) return null;
  const v = value.trim();
  const none = /^bytes \*\/(\d{1,16})$/i.exec(v);
  if (none) return { unsatisfied: true, total: Number(none[1]) };
  const m = /^bytes (\d{1,16})-(\d{1,16})\/(\d{1,16})$/i.exec(v);
  if (!m) return null;
  const [start, end, total] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (![start, end, total].every(Number.isSafeInteger) || start > end || end >= total) return null;
  return { start, end, total };
}

/** Number of slices of an object. */
export function sliceCount(total: number, sliceBytes: number): number {
  return Math.ceil(total / sliceBytes);
}

/** Bytes `start`..`end` (inclusive) of slice `index`. */
export function sliceSpan(index: number, sliceBytes: number, total: number): ByteRange {
  const start = index * sliceBytes;
  return { start, end: Math.min(total, start + sliceBytes) - 1 };
}

/** The slice holding byte `offset`. */
export function sliceOf(offset: number, sliceBytes: number): number {
  return Math.floor(offset / sliceBytes);
}

/** The validators a response carries: a strong ETag (weak ones cannot validate byte ranges) and Last-Modified. */
export function validatorsOf(headers: Headers): { etag?: string; lastModified?: string } {
  const etag = headers.get("etag")?.trim();
  const lastModified = headers.get("last-modified")?.trim();
  return {
    ...(etag && !etag.startsWith("W/") ? { etag } : {}),
    ...(lastModified ? { lastModified } : {}),
  };
}

/** Whether slices of a response can be told apart from another version's: it has a strong ETag or Last-Modified. */
export function canSlice(headers: Headers): boolean {
  const v = validatorsOf(headers);
  return v.etag !== undefined || v.lastModified !== undefined;
}

/** The version id of an object: a hash of its validators, total length and slice size (64 bits, base 36). */
export function versionId(v: { etag?: string; lastModified?: string }, total: number, sliceBytes: number): string {
  const text = `${v.etag ?? ""}\n${v.lastModified ?? ""}\n${total}\n${sliceBytes}`;
  return fnv1a(text, 0x811c9dc5).toString(36) + fnv1a(text, 0x050c5d1f).toString(36);
}

function fnv1a(text: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The storage key of one slice of an object version, under the object's storage key (its variant's, with Vary). */
export function sliceKey(objectStorageKey: string, version: string, index: number): string {
  return `${objectStorageKey}#s=${version};${index}`;
}

/**
 * Whether a response (its validators and total length) is the same version as the object record: same total, the
 * record's ETag when it has one, the record's Last-Modified when both carry one (and required without an ETag).
 */
export function sameVersion(
  object: { etag?: string; lastModified?: string; total: number },
  response: { etag?: string; lastModified?: string; total: number },
): boolean {
  if (object.total !== response.total) return false;
  if (object.etag !== undefined && response.etag !== object.etag) return false;
  if (object.etag === undefined && (object.lastModified === undefined || response.lastModified !== object.lastModified)) return false;
  if (object.lastModified !== undefined && response.lastModified !== undefined && response.lastModified !== object.lastModified) return false;
  return true;
}

/** Request headers that make the origin refuse (412) a slice of any other version than the record's. */
export function versionConditions(object: { etag?: string; lastModified?: string }): Record<string, string> {
  if (object.etag) return { "if-match": object.etag };
  return object.lastModified ? { "if-unmodified-since": object.lastModified } : {};
}

/** The metadata of slice `index` of a sliced object. */
export function sliceMeta(record: EntryMeta & { sliced: SlicedObject }, index: number, responseTime: number): SliceMeta {
  const { total, sliceBytes, version } = record.sliced;
  const span = sliceSpan(index, sliceBytes, total);
  return {
    kind: "slice",
    key: record.key,
    version,
    index,
    start: span.start,
    end: span.end,
    total,
    ...(record.etag ? { etag: record.etag } : {}),
    ...(record.lastModified ? { lastModified: record.lastModified } : {}),
    responseTime,
    tags: record.tags,
  };
}

/** Whether a stored slice belongs to the record's version, at the place `index` says. */
export function sliceFits(meta: SliceMeta, record: EntryMeta & { sliced: SlicedObject }, index: number): boolean {
  const { total, sliceBytes, version } = record.sliced;
  const span = sliceSpan(index, sliceBytes, total);
  return (
    meta.version === version &&
    meta.index === index &&
    meta.start === span.start &&
    meta.end === span.end &&
    meta.total === total &&
    meta.etag === record.etag &&
    meta.lastModified === record.lastModified
  );
}

/**
 * What part of an object of `total` bytes a GET/HEAD needs, decided as deliver.ts decides the answer: nothing (HEAD,
 * 304 for the client's conditionals, 416), one span (the whole body or a single range), or several ranges.
 */
export type Needed = { kind: "none" } | { kind: "span"; start: number; end: number } | { kind: "ranges"; ranges: ByteRange[] };

export function neededBytes(method: string, request: Headers, stored: HeaderList, total: number): Needed {
  if (method === "HEAD" || isNotModified(request, stored)) return { kind: "none" };
  const range = request.get("range");
  const ranges =
    range !== null && ifRangeMatches(request.get("if-range"), headerOf(stored, "etag"), headerOf(stored, "last-modified"))
      ? parseRange(range, total)
      : null;
  if (ranges === null) return { kind: "span", start: 0, end: total - 1 };
  if (ranges.length === 0) return { kind: "none" };
  if (ranges.length === 1) return { kind: "span", ...ranges[0]! };
  return { kind: "ranges", ranges };
}

/**
 * The first byte a request for an unknown object needs (the probe asks for the slice that holds it): the start of
 * its first range, 0 for suffix ranges (the total is not known yet) and whole requests.
 */
export function firstWantedByte(request: Headers): number {
  const m = /^\s*bytes\s*=\s*(\d+)\s*-/i.exec(request.get("range") ?? "");
  const n = m ? Number(m[1]) : 0;
  return Number.isSafeInteger(n) ? n : 0;
}
