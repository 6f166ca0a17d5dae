/** Byte ranges (RFC 9110 §14): parsing Range, If-Range, and slicing a body stream without buffering it. */

export interface ByteRange {
  start: number;
  /** inclusive */
  end: number;
}

/**
 * The satisfiable ranges of a `Range: bytes=…` header for a body of `size` bytes:
 * `null` when the header is absent, malformed or not bytes (serve the whole body), `[]` when none is satisfiable (416).
 */
export function parseRange(header: string | null, size: number): ByteRange[] | null {
  if (!header) return null;
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (!m) return null;
  const ranges: ByteRange[] = [];
  for (const part of m[1]!.split(",")) {
    const spec = part.trim();
    if (!spec) continue;
    const r = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
    if (!r || (r[1] === "" && r[2] === "")) return null;
    if (r[1] === "") {
      const suffix = Number(r[2]);
      if (suffix === 0) continue;
      ranges.push({ start: Math.max(0, size - suffix), end: size - 1 });
    } else {
      const start = Number(r[1]);
      const end = r[2] === "" ? size - 1 : Math.min(Number(r[2]), size - 1);
      if (r[2] !== "" && Number(r[2]) < start) return null;
      if (start >= size) continue;
      ranges.push({ start, end });
    }
  }
  if (ranges.length > 50) return null; // a range-amplification attempt: answer with the whole body
  return size === 0 ? [] : ranges;
}

/** If-Range (RFC 9110 §13.1.5): a strong ETag that matches, or an exact Last-Modified date. */
export function ifRangeMatches(ifRange: string | null, etag: string | null, lastModified: string | null): boolean {
  if (ifRange === null) return true;
  const v = ifRange.trim();
  if (v.startsWith('"')) return etag !== null && !etag.startsWith("W/") && etag === v;
  if (v.startsWith("W/")) return false;
  return lastModified !== null && Date.parse(v) === Date.parse(lastModified) && !Number.isNaN(Date.parse(v));
}

/** A stream of bytes `start`..`end` (inclusive) of `body`, read once, nothing buffered beyond one chunk. */
export function sliceStream(body: ReadableStream<Uint8Array>, start: number, end: number): ReadableStream<Uint8Array> {
  let offset = 0;
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return controller.close();
        const chunkStart = offset;
        offset += value.byteLength;
        if (offset <= start) continue;
        const from = Math.max(0, start - chunkStart);
        const to = Math.min(value.byteLength, end + 1 - chunkStart);
        if (to > from) controller.enqueue(value.subarray(from, to));
        if (offset > end) {
          await reader.cancel();
          return controller.close();
        }
        return;
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** A multipart/byteranges body (RFC 9110 §14.6): `parts[i]` holds the bytes of `ranges[i]` of a body of `size` bytes. */
export function multipartByteranges(
  parts: Uint8Array[],
  ranges: ByteRange[],
  size: number,
  contentType: string | null,
  boundary: string,
): Uint8Array {
  const enc = new TextEncoder();
  const pieces: Uint8Array[] = [];
  ranges.forEach((r, i) => {
    let head = `\r\n--${boundary}\r\n`;
    if (contentType) head += `Content-Type: ${contentType}\r\n`;
    head += `Content-Range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`;
    pieces.push(enc.encode(head), parts[i]!);
  });
  pieces.push(enc.encode(`\r\n--${boundary}--\r\n`));
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of pieces) out.set(p, o), (o += p.byteLength);
  return out;
}
