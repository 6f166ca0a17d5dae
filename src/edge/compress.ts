/**
 * Step "compress" (inside fetch and store): a text-like response the origin sent uncompressed becomes a br or gzip
 * variant for clients that accept one, compressed once, when it is stored; a HIT never compresses again. Every such
 * response varies on Accept-Encoding (the edge adds it): three variants at most, br, gzip and identity
 * (src/cache/encoding.ts). Origin-compressed bodies, `no-transform` and other types pass as they are.
 *
 * Brotli and gzip come from node:zlib (workerd implements it natively; WebCrypto-style CompressionStream has no br).
 * Compression is synchronous on the whole body, bounded by compress_max_bytes.
 */
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import type { EdgeConfig } from "../config/edge-schema.ts";
import { parseDirectives } from "../cache/directives.ts";
import { acceptedCodings, chooseCoding, typeMatches } from "../cache/encoding.ts";
import { lengthOf } from "./deliver.ts";
import { edgeResponse } from "./transaction.ts";

/** Brotli quality 5 and gzip level 6: most of the gain for a small share of the maximum's CPU. */
const BROTLI_QUALITY = 5;
const GZIP_LEVEL = 6;

/** The response to store and answer with: compressed for `request` when that is worth it, else as it came. */
export async function compressed(edge: EdgeConfig, request: Request, response: Response): Promise<Response> {
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
  const coding = chooseCoding(acceptedCodings(request.headers.get("accept-encoding")));
  if (!coding) return edgeResponse(response.body, { status: 200, statusText: response.statusText, headers: out });
  const whole = await readAtMost(response.body, edge.compress_max_bytes);
  if (!("bytes" in whole)) return edgeResponse(whole.stream, { status: 200, statusText: response.statusText, headers: out });
  if (whole.bytes.byteLength < edge.compress_min_bytes) return edgeResponse(whole.bytes, { status: 200, statusText: response.statusText, headers: out });
  const body =
    coding === "br"
      ? brotliCompressSync(whole.bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY, [constants.BROTLI_PARAM_SIZE_HINT]: whole.bytes.byteLength } })
      : gzipSync(whole.bytes, { level: GZIP_LEVEL });
  out.set("content-encoding", coding);
  out.set("content-length", String(body.byteLength));
  // Another representation than the origin's: its validator may not claim byte-for-byte equality (RFC 9110 §8.8.1).
  const etag = out.get("etag");
  if (etag && !etag.startsWith("W/")) out.set("etag", `W/${etag}`);
  return edgeResponse(new Uint8Array(body.buffer, body.byteOffset, body.byteLength), { status: 200, statusText: response.statusText, headers: out });
}

/** The whole body when it ends within `max` bytes; else a stream of everything (what was read, then the rest). */
async function readAtMost(body: ReadableStream<Uint8Array>, max: number): Promise<{ bytes: Uint8Array } | { stream: ReadableStream<Uint8Array> }> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.byteLength;
    if (n > max) {
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
