/**
 * Step "compress" (inside fetch and store): a text-like response the origin sent uncompressed becomes a br or gzip
 * variant for clients that accept one, compressed once, when it is stored; a HIT never compresses again. Every such
 * response varies on Accept-Encoding (the edge adds it): three variants at most, br, gzip and identity
 * (src/cache/encoding.ts). Origin-compressed bodies, `no-transform` and other types pass as they are.
 *
 * Brotli and gzip come from node:zlib (workerd implements it natively; WebCrypto-style CompressionStream has no br).
 * The isolate is single-threaded: a body is compressed in slices of COMPRESS_SLICE_BYTES with a turn of the event
 * loop between them, so other requests are served meanwhile; and the bodies being compressed at once in a process
 * may hold at most compress_budget_bytes (a body that would go beyond passes uncompressed, as one over
 * compress_max_bytes does), so compression's memory stays bounded however many large responses arrive together.
 */
import { brotliCompressSync, constants, createBrotliCompress, createGzip, gzipSync } from "node:zlib";
import type { EdgeConfig } from "../config/edge-schema.ts";
import { parseDirectives } from "../cache/directives.ts";
import { acceptedCodings, chooseCoding, typeMatches } from "../cache/encoding.ts";
import { lengthOf } from "./deliver.ts";
import { edgeResponse } from "./transaction.ts";

/** Brotli quality 5 and gzip level 6: most of the gain for a small share of the maximum's CPU. */
const BROTLI_QUALITY = 5;
const GZIP_LEVEL = 6;
/** At most this much is compressed in one turn of the event loop (about 1–2 ms of CPU at these levels). */
export const COMPRESS_SLICE_BYTES = 64 * 1024;

/** Bytes of bodies under compression in this isolate: what each compression holds, given back when it ends. */
export class CompressBudget {
  private used = 0;
  readonly limit: number;
  constructor(limit: number) {
    this.limit = limit;
  }
  /** Takes `n` bytes when they fit; false (nothing taken) when they do not. */
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }
  give(n: number) {
    this.used = Math.max(0, this.used - n);
  }
  get inUse(): number {
    return this.used;
  }
}

const budgets = new Map<number, CompressBudget>();
/** The isolate's budget for a configured limit (one per process; configs with the same limit share it). */
function budgetFor(limit: number): CompressBudget {
  let b = budgets.get(limit);
  if (!b) budgets.set(limit, (b = new CompressBudget(limit)));
  return b;
}

/** Bytes compressing now (between the first and the last slice). */
let compressing = 0;

/** This process's compression in numbers, for the metrics: bytes held within the budget, bytes compressing now. */
export function compressionGauges(): { heldBytes: number; compressingBytes: number } {
  let held = 0;
  for (const b of budgets.values()) held += b.inUse;
  return { heldBytes: held, compressingBytes: compressing };
}

/** The response to store and answer with: compressed for `request` when that is worth it, else as it came. */
export async function compressed(edge: EdgeConfig, request: Request, response: Response, budget = budgetFor(edge.compress_budget_bytes)): Promise<Response> {
  const headers = response.headers;
  if (!edge.compress || response.status !== 200 || !response.body) return response;
  const encoding = headers.get("content-encoding");
  if ((encoding && encoding !== "identity") || !typeMatches(headers.get("content-type"), edge.compress_types)) return response;
  if (parseDirectives(headers.get("cache-control")).has("no-transform")) return response;
  const length = lengthOf(headers);
  if (length !== undefined && (length < edge.compress_min_bytes || length > edge.compress_max_bytes)) return response;

  // From here the representation depends on Accept-Encoding, whether this client gets it compressed or not.
  const out = new Headers(headers);
  const vary = out.get("vary");
  if (!vary?.toLowerCase().split(",").some((f) => ["accept-encoding", "*"].includes(f.trim()))) {
    out.set("vary", vary ? `${vary}, Accept-Encoding` : "Accept-Encoding");
  }
  const init = { status: 200, statusText: response.statusText, headers: out };
  const coding = chooseCoding(acceptedCodings(request.headers.get("accept-encoding")));
  if (!coding) return edgeResponse(response.body, init);
  // A body of known length takes its share of the budget before it is read; one of unknown length as it arrives.
  const reserved = length !== undefined ? budget.take(length) : undefined;
  if (reserved === false) return edgeResponse(response.body, init);
  let held = reserved ? length! : 0;
  try {
    const whole = await readAtMost(response.body, edge.compress_max_bytes, reserved ? undefined : budget);
    if (!("bytes" in whole)) return edgeResponse(whole.stream, init);
    if (!reserved) held = whole.bytes.byteLength;
    if (whole.bytes.byteLength < edge.compress_min_bytes) return edgeResponse(whole.bytes, init);
    const body = await compress(whole.bytes, coding);
    out.set("content-encoding", coding);
    out.set("content-length", String(body.byteLength));
    // Another representation than the origin's: its validator may not claim byte-for-byte equality (RFC 9110 §8.8.1).
    const etag = out.get("etag");
    if (etag && !etag.startsWith("W/")) out.set("etag", `W/${etag}`);
    return edgeResponse(body, init);
  } finally {
    budget.give(held);
  }
}

/** A turn of the event loop: other requests' I/O and callbacks run before the next slice. */
const nextTurn = () => new Promise<void>((r) => setTimeout(r, 0));

/** `bytes` compressed, slice by slice, yielding between slices; small bodies in one call. */
async function compress(bytes: Uint8Array, coding: "br" | "gzip"): Promise<Uint8Array> {
  const brotli = { params: { [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.byteLength } };
  if (bytes.byteLength <= COMPRESS_SLICE_BYTES) {
    const b = coding === "br" ? brotliCompressSync(bytes, brotli) : gzipSync(bytes, { level: GZIP_LEVEL });
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }
  compressing += bytes.byteLength;
  try {
    return await compressInSlices(bytes, coding === "br" ? createBrotliCompress(brotli) : createGzip({ level: GZIP_LEVEL }));
  } finally {
    compressing -= bytes.byteLength;
  }
}

async function compressInSlices(bytes: Uint8Array, z: ReturnType<typeof createGzip>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  z.on("data", (c: Uint8Array) => (chunks.push(c), (size += c.byteLength)));
  const ended = new Promise<void>((resolve, reject) => (z.once("end", resolve), z.once("error", reject)));
  for (let at = 0; at < bytes.byteLength; at += COMPRESS_SLICE_BYTES) {
    const slice = bytes.subarray(at, at + COMPRESS_SLICE_BYTES);
    await new Promise<void>((resolve, reject) => z.write(slice, (err) => (err ? reject(err) : resolve())));
    await nextTurn();
  }
  z.end();
  await ended;
  const body = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) (body.set(c, at), (at += c.byteLength));
  return body;
}

/**
 * The whole body when it ends within `max` bytes and fits `budget` when one is given (taken from it as it arrives:
 * the caller gives it back); else a stream of everything (what was read, then the rest) with nothing taken.
 */
async function readAtMost(
  body: ReadableStream<Uint8Array>,
  max: number,
  budget = new CompressBudget(Infinity),
): Promise<{ bytes: Uint8Array } | { stream: ReadableStream<Uint8Array> }> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    let next: ReadableStreamReadResult<Uint8Array>;
    try {
      next = await reader.read();
    } catch (err) {
      budget.give(n);
      throw err;
    }
    const { done, value } = next;
    if (done) break;
    chunks.push(value);
    n += value.byteLength;
    if (n > max || !budget.take(value.byteLength)) {
      budget.give(n - value.byteLength);
      let i = 0;
      return {
        stream: new ReadableStream<Uint8Array>({
          async pull(c) {
            if (i < chunks.length) return c.enqueue(chunks[i++]!);
            const r = await reader.read();
            if (r.done) c.close();
            else c.enqueue(r.value);
          },
          cancel: (reason) => reader.cancel(reason),
        }),
      };
    }
  }
  const bytes = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) (bytes.set(c, at), (at += c.byteLength));
  return { bytes };
}
