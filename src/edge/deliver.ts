/**
 * Step "deliver": every answer leaves through here. Client conditionals (304), Range (206 / multipart / 416), HEAD,
 * Age, Via, X-Cache-Status and Cache-Status. Also the Outcomes the other steps build from stored entries or failures.
 */
import { currentAgeOf, type EntryMeta } from "../cache/entry.ts";
import { deleteHeader, headerOf, setHeader, type HeaderList } from "../cache/headers.ts";
import { isNotModified, notModifiedHeaders } from "../cache/conditional.ts";
import { ifRangeMatches, multipartByteranges, parseRange, sliceStream } from "../cache/range.ts";
import { appendCacheStatus, cacheStatusMember, type CacheStatusParams, type XCacheStatus } from "../cache/status.ts";
import { CDN_ONLY_HEADERS } from "../cache/policy.ts";
import { ClientBodyError, OriginTimeout } from "./origin.ts";
import type { StoredEntry } from "./store.ts";
import { NULL_BODY_STATUS, dropBody, edgeResponse, textOutcome, textResponse, type Engine, type Outcome } from "./transaction.ts";

/** From this size on, a single Range is read by the store (a seek) rather than skipped through in the body. */
const RANGE_FROM_STORE_MIN = 1024 * 1024;
/** Largest body assembled in memory for a multi-range answer; larger ones get the whole body. */
const MULTIPART_LIMIT = 8 * 1024 * 1024;

/** What the access log and metrics need of an answer, known here without reading headers back. */
export interface Delivered {
  response: Response;
  xcs: XCacheStatus;
  /** Body bytes sent (as Content-Length says; 0 when unknown). */
  bytes: number;
  collapsed: boolean;
}

/**
 * The answer headers of a memory-tier entry (by its frozen meta), made once per age, status and Cache-Status member:
 * every plain GET of a held copy within the same second gets them as they are (see deliver).
 */
const prepared = new WeakMap<object, { key: string; init: HeadersInit; bytes: number }>();

/**
 * The client's answer for an Outcome. The headers are one list, changed here and made into a Response once (every
 * change to a Headers object is a call into the runtime; on a HIT they cost more than the rest of the engine).
 */
export async function deliver(e: Engine, request: Request, o: Outcome): Promise<Delivered> {
  const name = e.edge.name;
  const member = cacheStatusMember(name, o.cacheStatus);
  // Another tier of the CDN (it names itself in CDN-Loop) gets the targeted fields too (RFC 9213); a client never.
  const toTier = request.headers.has("cdn-loop");
  if (o.template && o.body instanceof Uint8Array && o.status === 200 && request.method === "GET" && !asksForPart(request.headers)) {
    // A whole 200 of a held copy, no conditional, no Range: the headers the steps below would make, made once.
    const key = `${o.age === undefined ? "" : Math.floor(o.age)}\n${o.xcs}\n${member}\n${toTier}`;
    let p = prepared.get(o.template);
    if (p?.key !== key) {
      o.headers = o.headers.slice(); // the held copy's own list is shared (and frozen)
      const h = stamp(o, name, member, toTier);
      setHeader(h, "accept-ranges", "bytes");
      p = { key, init: headersInit(h), bytes: Number(headerOf(h, "content-length") ?? 0) || 0 };
      prepared.set(o.template, p);
    }
    const response = edgeResponse(o.body, { status: 200, statusText: o.statusText, headers: p.init });
    return { response, xcs: o.xcs, bytes: p.bytes, collapsed: o.cacheStatus.collapsed === true };
  }
  if (o.template) o.headers = o.headers.slice(); // a held copy's list is shared (and frozen): changed on a copy
  const h = stamp(o, name, member, toTier);
  const facts = (response: Response, list: HeaderList = h): Delivered => ({
    response,
    xcs: o.xcs,
    bytes: Number(headerOf(list, "content-length") ?? 0) || 0,
    collapsed: o.cacheStatus.collapsed === true,
  });
  const answer = (status: number, body: BodyInit | null, statusText?: string) => facts(edgeResponse(body, { status, statusText, headers: headersInit(h) }));
  // The store could not give the bytes it holds: an error of our own, none of the entry's headers.
  const unreadable = () => facts(textResponse(502, "502 the stored object could not be read\n"), []);
  const method = request.method;
  const isRead = method === "GET" || method === "HEAD";
  if (isRead && o.status === 200 && isNotModified(request.headers, h)) {
    await dropBody(o);
    const kept = notModifiedHeaders(h);
    return facts(edgeResponse(null, { status: 304, headers: headersInit(kept) }), kept);
  }
  const bytes = o.body instanceof Uint8Array ? o.body : undefined;
  const size = o.size ?? bytes?.byteLength ?? lengthOf(h);
  if (isRead && o.status === 200 && size !== undefined) {
    setHeader(h, "accept-ranges", "bytes");
    const range = method === "GET" ? request.headers.get("range") : null;
    const ranges = range !== null && ifRangeMatches(request.headers.get("if-range"), headerOf(h, "etag"), headerOf(h, "last-modified"))
      ? parseRange(range, size)
      : null;
    if (ranges && ranges.length === 0) {
      await dropBody(o);
      setHeader(h, "content-range", `bytes */${size}`);
      deleteHeader(h, "content-length");
      return answer(416, null);
    }
    // A body only the store can read (a sliced object) has no stream of its own: every byte comes by readRange.
    const storeOnly = !bytes && !o.body && o.readRange !== undefined;
    if (ranges && ranges.length === 1 && (o.body || storeOnly)) {
      const r = ranges[0]!;
      setHeader(h, "content-range", `bytes ${r.start}-${r.end}/${size}`);
      setHeader(h, "content-length", String(r.end - r.start + 1));
      let part: ReadableStream<Uint8Array> | Uint8Array | null = bytes ? bytes.subarray(r.start, r.end + 1) : null;
      if (!part && o.readRange && (size >= RANGE_FROM_STORE_MIN || storeOnly)) {
        // The whole body goes first: the store may already be reading its first block, which would stay in memory
        // while this range waits its turn for a block read (see src/store/slots.ts).
        await dropBody(o);
        part = await o.readRange(r.start, r.end).catch(() => null);
        if (!part) return unreadable();
      }
      if (part && !bytes) await dropBody(o);
      if (!part && !o.body) return unreadable();
      return answer(206, part ?? sliceStream(o.body as ReadableStream<Uint8Array>, r.start, r.end));
    }
    if (ranges && ranges.length > 1 && (o.body || storeOnly)) {
      const wanted = ranges.reduce((n, r) => n + r.end - r.start + 1, 0);
      let parts: Uint8Array[] | null = null;
      if (bytes || (size <= MULTIPART_LIMIT && o.body)) {
        const whole = bytes ?? new Uint8Array(await new Response(o.body).arrayBuffer());
        parts = ranges.map((r) => whole.subarray(r.start, r.end + 1));
      } else if (o.readRange && wanted <= MULTIPART_LIMIT) {
        // Each range read on its own (a large object: a seek, or its slices), assembled within the limit.
        parts = await readAll(o.readRange, ranges);
        if (parts) await dropBody(o);
      }
      if (parts) {
        const boundary = crypto.randomUUID().replace(/-/g, "");
        const body = multipartByteranges(parts, ranges, size, headerOf(h, "content-type"), boundary);
        setHeader(h, "content-type", `multipart/byteranges; boundary=${boundary}`);
        setHeader(h, "content-length", String(body.byteLength));
        return answer(206, body);
      }
    }
    if (storeOnly && method === "GET") {
      // The whole body (no range, or ranges too large to assemble).
      const whole = size > 0 ? await o.readRange!(0, size - 1).catch(() => null) : null;
      if (size > 0 && !whole) return unreadable();
      return answer(o.status, whole, o.statusText);
    }
  }
  if (method === "HEAD" || NULL_BODY_STATUS.has(o.status)) {
    await dropBody(o);
    return answer(o.status, null, o.statusText);
  }
  return answer(o.status, o.body, o.statusText);
}

/** Whether a request's answer may be other than the whole 200: a conditional (304) or a Range (206, 416). */
function asksForPart(headers: Headers): boolean {
  return headers.has("range") || headers.has("if-none-match") || headers.has("if-modified-since");
}

/**
 * The Outcome's headers with what every answer carries: Age, Via, X-Cache-Status, Cache-Status, and without the
 * targeted fields unless the answer goes to another tier (changed in place).
 */
function stamp(o: Outcome, name: string, member: string, toTier: boolean): HeaderList {
  const h = o.headers;
  if (!toTier) for (const field of CDN_ONLY_HEADERS) deleteHeader(h, field);
  if (o.age !== undefined) setHeader(h, "age", String(Math.floor(o.age)));
  const via = headerOf(h, "via");
  setHeader(h, "via", via ? `${via}, 1.1 ${name}` : `1.1 ${name}`);
  setHeader(h, "x-cache-status", o.xcs);
  setHeader(h, "cache-status", appendCacheStatus(headerOf(h, "cache-status"), member));
  return h;
}

/**
 * The list as a Response's headers: a plain object when no name repeats (the runtime takes that in one step, much
 * cheaper than a list of pairs or a Headers object filled field by field), the pairs when one does (Set-Cookie).
 */
function headersInit(list: HeaderList): HeadersInit {
  const out: Record<string, string> = Object.create(null); // a field named __proto__ is a field like any other
  for (const [name, value] of list) {
    if (out[name] !== undefined) return list;
    out[name] = value;
  }
  return out;
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
  if (noBody && !entry.bytes) void entry.body?.cancel();
  const template = entry.bytes && Object.isFrozen(meta) ? meta : undefined;
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
    status: meta.status,
    statusText: meta.statusText,
    // A copy: stored metas are shared. A held copy's (frozen, the same object while held) is copied by deliver only
    // when it needs to change it: its answer headers are made once (see deliver).
    headers: template ? meta.headers : meta.headers.slice(),
    body: noBody ? null : (entry.bytes ?? entry.body),
    template,
    xcs: status,
    cacheStatus,
    age: currentAgeOf(meta, e.now()),
    size: meta.size,
    readRange,
  };
}

/**
 * 502 (unreachable) or 504 (timed out) when no origin answered and nothing stored may stand in; 400 when it was
 * the client's own body that failed.
 */
export function originFailure(error: unknown, status: XCacheStatus, cacheStatus: CacheStatusParams = {}): Outcome {
  if (error instanceof ClientBodyError) return textOutcome(400, "400 the request body could not be read\n", status, { ...cacheStatus, detail: "client-body" });
  const timeout = error instanceof OriginTimeout;
  return textOutcome(timeout ? 504 : 502, timeout ? "504 origin timed out\n" : "502 origin unreachable\n", status, {
    ...cacheStatus,
    fwdStatus: undefined,
    detail: timeout ? "origin-timeout" : "origin-unreachable",
  });
}

/** only-if-cached (RFC 9111 §5.2.1.7) with nothing usable stored. */
export function gatewayTimeout(reason: string): Outcome {
  return textOutcome(504, `504 ${reason}\n`, "MISS", { detail: "only-if-cached" });
}

export function lengthOf(headers: Headers | HeaderList): number | undefined {
  const v = headers instanceof Headers ? headers.get("content-length") : headerOf(headers, "content-length");
  if (v === null || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}
