/**
 * Generated objects of any size, answered as a static file server answers files: strong ETag and Last-Modified,
 * a single Range (206, or 416), If-Range, If-Match / If-Unmodified-Since (412), If-None-Match (304), HEAD. Byte i of
 * an object is (i + seed) mod 251, computed as it is sent, so a multi-GB "ISO" costs no memory or disk and any part of
 * it (and which version it came from) can be checked. The demo origin's ISO, the mirror tests and the mirror
 * benchmark's origin use it.
 */
import { isNotModified } from "../cache/conditional.ts";
import { headerPairs } from "../cache/headers.ts";
import { ifRangeMatches, parseRange, type ByteRange } from "../cache/range.ts";

export interface GeneratedObject {
  size: number;
  /** The version: byte i is (i + seed) % 251. */
  seed?: number;
  /** Strong ETag; default `"<size hex>-<seed>"`; null: none. */
  etag?: string | null;
  /** Default: a fixed date; null: none. */
  lastModified?: string | null;
  cacheControl?: string;
  contentType?: string;
  /** Honour Range (default true); false answers every GET with the whole object, as some origins do. */
  ranges?: boolean;
}

const CHUNK = 1024 * 1024;
/** pattern[j] = j % 251 for one chunk plus one period: any offset's chunk is a subarray. */
const PATTERN = Uint8Array.from({ length: CHUNK + 251 }, (_, j) => j % 251);

/** Bytes `start`..`start + length - 1` of a generated object of `seed` (for checks). */
export function generatedBytes(start: number, length: number, seed = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (start + i + seed) % 251;
  return out;
}

/**
 * Whether `chunk`, found at `offset` of an answer, holds the object's bytes of version `seed` (checked at every 4093rd
 * byte and the last: a wrong slice, a shifted one or another version's bytes all show).
 */
export function chunkMatches(chunk: Uint8Array, offset: number, seed = 0): boolean {
  for (let i = 0; i < chunk.byteLength; i += 4093) if (chunk[i] !== (offset + i + seed) % 251) return false;
  const last = chunk.byteLength - 1;
  return last < 0 || chunk[last] === (offset + last + seed) % 251;
}

/** The headers a generated object is served with. */
export function generatedHeaders(obj: GeneratedObject): Headers {
  const headers = new Headers({
    "content-type": obj.contentType ?? "application/octet-stream",
    "accept-ranges": obj.ranges === false ? "none" : "bytes",
    date: new Date().toUTCString(),
  });
  if (obj.cacheControl) headers.set("cache-control", obj.cacheControl);
  const etag = obj.etag === undefined ? `"${obj.size.toString(16)}-${obj.seed ?? 0}"` : obj.etag;
  if (etag) headers.set("etag", etag);
  const lastModified = obj.lastModified === undefined ? "Mon, 01 Dec 2025 00:00:00 GMT" : obj.lastModified;
  if (lastModified) headers.set("last-modified", lastModified);
  return headers;
}

/** Answers a GET/HEAD for a generated object; `sent` hears every body chunk's length as it goes out. */
export function answerGenerated(request: Request, obj: GeneratedObject, sent: (bytes: number) => void = () => {}): Response {
  return answerStatic(request, obj.size, generatedHeaders(obj), obj.ranges !== false, (start, length) =>
    generatedStream(start, length, obj.seed ?? 0, sent),
  );
}

/**
 * Answers a GET/HEAD for a static body of `size` bytes as a file server does (the validators are in `headers`):
 * 412, 304, a single range (206) or 416 when `ranges`, else the whole body. `body(start, length)` makes the bytes.
 */
export function answerStatic(
  request: Request,
  size: number,
  headers: Headers,
  ranges: boolean,
  body: (start: number, length: number) => ReadableStream<Uint8Array> | Uint8Array,
): Response {
  const req = request.headers;
  if (preconditionFailed(req, headers)) return new Response(null, { status: 412, headers });
  if (isNotModified(req, headerPairs(headers))) return new Response(null, { status: 304, headers });
  let range: ByteRange = { start: 0, end: size - 1 };
  let status = 200;
  if (ranges && ifRangeMatches(req.get("if-range"), headers.get("etag"), headers.get("last-modified"))) {
    const asked = parseRange(req.get("range"), size);
    if (asked && asked.length === 0) {
      headers.set("content-range", `bytes */${size}`);
      return new Response(null, { status: 416, headers });
    }
    if (asked && asked.length === 1) {
      range = asked[0]!;
      status = 206;
      headers.set("content-range", `bytes ${range.start}-${range.end}/${size}`);
    }
  }
  const length = size === 0 ? 0 : range.end - range.start + 1;
  headers.set("content-length", String(length));
  if (request.method === "HEAD") return new Response(null, { status, headers });
  return new Response(body(range.start, length), { status, headers });
}

/** If-Match / If-Unmodified-Since against the object's validators (RFC 9110 §13.1.1, §13.1.4). */
function preconditionFailed(req: Headers, headers: Headers): boolean {
  const ifMatch = req.get("if-match");
  if (ifMatch !== null) return ifMatch.trim() !== "*" && !ifMatch.split(",").some((t) => t.trim() === headers.get("etag"));
  const ius = Date.parse(req.get("if-unmodified-since") ?? "");
  const lm = Date.parse(headers.get("last-modified") ?? "");
  return !Number.isNaN(ius) && !Number.isNaN(lm) && lm > ius;
}

/** `length` bytes of the pattern from `start`, generated chunk by chunk as the reader pulls. */
function generatedStream(start: number, length: number, seed: number, sent: (bytes: number) => void): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= length) return controller.close();
      const n = Math.min(CHUNK, length - offset);
      const phase = (start + offset + seed) % 251;
      // A copy: the consumer may keep or transfer the chunk.
      controller.enqueue(PATTERN.slice(phase, phase + n));
      offset += n;
      sent(n);
    },
  });
}

/**
 * A site of generated objects by path (the mirror tests' and benchmark's origin): `handle` answers them (404
 * otherwise) and counts the body bytes sent per path; `GET /__sent` answers the counts as JSON.
 */
export function generatedSite(objects: Map<string, GeneratedObject>) {
  const sent = new Map<string, number>();
  const handle = (request: Request): Response => {
    const path = new URL(request.url).pathname;
    if (path === "/__sent") return Response.json(Object.fromEntries(sent));
    const obj = objects.get(path);
    if (!obj) return new Response("not found\n", { status: 404, headers: { "content-type": "text/plain" } });
    return answerGenerated(request, obj, (n) => sent.set(path, (sent.get(path) ?? 0) + n));
  };
  return { handle, sent: (path: string) => sent.get(path) ?? 0, reset: () => sent.clear() };
}
