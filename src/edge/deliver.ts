/**
 * Step "deliver": every answer leaves through here. Client conditionals (304), Range (206 / multipart / 416), HEAD,
 * Age, Via, X-Cache-Status and Cache-Status. Also the Outcomes the other steps build from stored entries or failures.
 */
import { currentAgeOf, entryHeaders, type EntryMeta } from "../cache/entry.ts";
import { isNotModified, notModifiedHeaders } from "../cache/conditional.ts";
import { ifRangeMatches, multipartByteranges, parseRange, sliceStream } from "../cache/range.ts";
import { appendCacheStatus, cacheStatusMember, type CacheStatusParams, type XCacheStatus } from "../cache/status.ts";
import { ClientBodyError, OriginTimeout } from "./origin.ts";
import type { StoredEntry } from "./store.ts";
import { NULL_BODY_STATUS, textResponse, type Engine, type Outcome } from "./transaction.ts";

/** From this size on, a single Range is read by the store (a seek) rather than skipped through in the body. */
const RANGE_FROM_STORE_MIN = 1024 * 1024;
/** Largest body assembled in memory for a multi-range answer; larger ones get the whole body. */
const MULTIPART_LIMIT = 8 * 1024 * 1024;

/** The client's answer for an Outcome. Every Outcome's Response was built by the engine: its headers are ours. */
export async function deliver(e: Engine, request: Request, o: Outcome): Promise<Response> {
  const res = o.response;
  const headers = res.headers;
  const name = e.edge.name;
  if (o.age !== undefined) headers.set("age", String(Math.floor(o.age)));
  const via = headers.get("via");
  headers.set("via", via ? `${via}, 1.1 ${name}` : `1.1 ${name}`);
  headers.set("x-cache-status", o.status);
  headers.set("cache-status", appendCacheStatus(headers.get("cache-status"), cacheStatusMember(name, o.cacheStatus)));
  const method = request.method;
  const isRead = method === "GET" || method === "HEAD";
  const status = res.status;
  // An in-memory body is never turned into a stream unless an answer needs part of it.
  const drop = () => (o.bytes ? undefined : res.body?.cancel());
  if (isRead && status === 200 && isNotModified(request.headers, headers)) {
    await drop();
    return new Response(null, { status: 304, headers: notModifiedHeaders(headers) });
  }
  const size = o.size ?? o.bytes?.byteLength ?? lengthOf(headers);
  if (isRead && status === 200 && size !== undefined) {
    headers.set("accept-ranges", "bytes");
    const range = method === "GET" ? request.headers.get("range") : null;
    const ranges = range !== null && ifRangeMatches(request.headers.get("if-range"), headers.get("etag"), headers.get("last-modified"))
      ? parseRange(range, size)
      : null;
    if (ranges && ranges.length === 0) {
      await drop();
      headers.set("content-range", `bytes */${size}`);
      headers.delete("content-length");
      return new Response(null, { status: 416, headers });
    }
    // A body only the store can read (a sliced object) has no stream of its own: every byte comes by readRange.
    const storeOnly = !o.bytes && !res.body && o.readRange !== undefined;
    if (ranges && ranges.length === 1 && (o.bytes || res.body || storeOnly)) {
      const r = ranges[0]!;
      headers.set("content-range", `bytes ${r.start}-${r.end}/${size}`);
      headers.set("content-length", String(r.end - r.start + 1));
      let part: ReadableStream<Uint8Array> | Uint8Array | null = o.bytes ? o.bytes.subarray(r.start, r.end + 1) : null;
      if (!part && o.readRange && (size >= RANGE_FROM_STORE_MIN || storeOnly)) part = await o.readRange(r.start, r.end).catch(() => null);
      if (part && !o.bytes) await res.body?.cancel();
      if (!part && !res.body) return textResponse(502, "502 the stored object could not be read\n");
      return new Response(part ?? sliceStream(res.body!, r.start, r.end), { status: 206, headers });
    }
    if (ranges && ranges.length > 1 && (o.bytes || res.body || storeOnly)) {
      const wanted = ranges.reduce((n, r) => n + r.end - r.start + 1, 0);
      let parts: Uint8Array[] | null = null;
      if (o.bytes || (size <= MULTIPART_LIMIT && res.body)) {
        const whole = o.bytes ?? new Uint8Array(await new Response(res.body).arrayBuffer());
        parts = ranges.map((r) => whole.subarray(r.start, r.end + 1));
      } else if (o.readRange && wanted <= MULTIPART_LIMIT) {
        // Each range read on its own (a large object: a seek, or its slices), assembled within the limit.
        parts = await readAll(o.readRange, ranges);
        if (parts) await res.body?.cancel();
      }
      if (parts) {
        const boundary = crypto.randomUUID().replace(/-/g, "");
        const body = multipartByteranges(parts, ranges, size, headers.get("content-type"), boundary);
        headers.set("content-type", `multipart/byteranges; boundary=${boundary}`);
        headers.set("content-length", String(body.byteLength));
        return new Response(body, { status: 206, headers });
      }
    }
    if (storeOnly && method === "GET") {
      // The whole body (no range, or ranges too large to assemble).
      const whole = size > 0 ? await o.readRange!(0, size - 1).catch(() => null) : null;
      if (size > 0 && !whole) return textResponse(502, "502 the stored object could not be read\n");
      return new Response(whole, { status, statusText: res.statusText, headers });
    }
  }
  if (method === "HEAD") {
    await drop();
    return new Response(null, { status, statusText: res.statusText, headers });
  }
  return res;
}

/** The bytes of each range read through `readRange`; null when one cannot be read. */
async function readAll(readRange: NonNullable<Outcome["readRange"]>, ranges: { start: number; end: number }[]): Promise<Uint8Array[] | null> {
  const parts: Uint8Array[] = [];
  for (const r of ranges) {
    const part = await readRange(r.start, r.end).catch(() => null);
    const bytes = part ? await new Response(part).arrayBuffer().catch(() => null) : null;
    if (!bytes || bytes.byteLength !== r.end - r.start + 1) return null;
    parts.push(new Uint8Array(bytes));
  }
  return parts;
}

/** An answer from a stored entry; with its storage key, a Range can be read by the store itself (see deliver). */
export function fromEntry(
  e: Engine,
  entry: StoredEntry,
  status: XCacheStatus,
  cacheStatus: CacheStatusParams,
  storageKey?: string,
): Outcome {
  const meta = entry.meta as EntryMeta;
  const noBody = NULL_BODY_STATUS.has(meta.status);
  const bytes = noBody ? undefined : entry.bytes;
  const body = noBody ? null : (bytes ?? entry.body);
  if (noBody && !entry.bytes) void entry.body?.cancel();
  const store = e.store;
  const readRange =
    storageKey !== undefined && store.getRange
      ? async (start: number, end: number) => {
          const part = await store.getRange!(storageKey, start, end);
          if (!part) return null;
          const m = part.meta;
          // Only the very entry that was judged: it may have been replaced since.
          if (m.kind === "entry" && m.responseTime === meta.responseTime && m.etag === meta.etag) return part.body;
          await part.body?.cancel();
          return null;
        }
      : undefined;
  return {
    response: new Response(body, { status: meta.status, statusText: meta.statusText, headers: entryHeaders(meta) }),
    status,
    cacheStatus,
    age: currentAgeOf(meta, e.now()),
    size: meta.size,
    bytes,
    readRange,
  };
}

/**
 * 502 (unreachable) or 504 (timed out) when no origin answered and nothing stored may stand in; 400 when it was
 * the client's own body that failed.
 */
export function originFailure(error: unknown, status: XCacheStatus, cacheStatus: CacheStatusParams = {}): Outcome {
  if (error instanceof ClientBodyError) {
    return { response: textResponse(400, "400 the request body could not be read\n"), status, cacheStatus: { ...cacheStatus, detail: "client-body" } };
  }
  const timeout = error instanceof OriginTimeout;
  return {
    response: textResponse(timeout ? 504 : 502, timeout ? "504 origin timed out\n" : "502 origin unreachable\n"),
    status,
    cacheStatus: { ...cacheStatus, fwdStatus: undefined, detail: timeout ? "origin-timeout" : "origin-unreachable" },
  };
}

/** only-if-cached (RFC 9111 §5.2.1.7) with nothing usable stored. */
export function gatewayTimeout(reason: string): Outcome {
  return { response: textResponse(504, `504 ${reason}\n`), status: "MISS", cacheStatus: { detail: "only-if-cached" } };
}

export function lengthOf(headers: Headers): number | undefined {
  const v = headers.get("content-length");
  if (v === null || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}
