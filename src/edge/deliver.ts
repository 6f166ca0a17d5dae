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
import { NULL_BODY_STATUS, edgeResponse, textResponse, type Engine, type Outcome } from "./transaction.ts";

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
    return edgeResponse(null, { status: 304, headers: notModifiedHeaders(headers) });
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
      return edgeResponse(null, { status: 416, headers });
    }
    if (ranges && ranges.length === 1 && (o.bytes || res.body)) {
      const r = ranges[0]!;
      headers.set("content-range", `bytes ${r.start}-${r.end}/${size}`);
      headers.set("content-length", String(r.end - r.start + 1));
      let part: ReadableStream<Uint8Array> | Uint8Array | null = o.bytes ? o.bytes.subarray(r.start, r.end + 1) : null;
      if (!part && o.readRange && size >= RANGE_FROM_STORE_MIN) part = await o.readRange(r.start, r.end).catch(() => null);
      if (part && !o.bytes) await res.body?.cancel();
      return edgeResponse(part ?? sliceStream(res.body!, r.start, r.end), { status: 206, headers });
    }
    if (ranges && ranges.length > 1 && (o.bytes || res.body) && size <= MULTIPART_LIMIT) {
      const whole = o.bytes ?? new Uint8Array(await new Response(res.body).arrayBuffer());
      const boundary = crypto.randomUUID().replace(/-/g, "");
      const parts = multipartByteranges(whole, ranges, headers.get("content-type"), boundary);
      headers.set("content-type", `multipart/byteranges; boundary=${boundary}`);
      headers.set("content-length", String(parts.byteLength));
      return edgeResponse(parts, { status: 206, headers });
    }
  }
  if (method === "HEAD") {
    await drop();
    return edgeResponse(null, { status, statusText: res.statusText, headers });
  }
  return res;
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
    response: edgeResponse(body, { status: meta.status, statusText: meta.statusText, headers: entryHeaders(meta) }),
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
