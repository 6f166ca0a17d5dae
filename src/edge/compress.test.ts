import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { COMPRESS_SLICE_BYTES, CompressBudget, compressed } from "./compress.ts";

const edge = parseConfig('[edge]\norigin = "http://127.0.0.1:8080"\ncompress_max_bytes = 4194304\n').edge!;
const text = (n: number) => new TextEncoder().encode("the parrot repeats what it hears. ".repeat(Math.ceil(n / 34)).slice(0, n));
const request = (ae: string) => new Request("http://www.example.org/x", { headers: { "accept-encoding": ae } });
/** An origin response of `body`, with its Content-Length or (chunked) without. */
function origin(body: Uint8Array, withLength = true): Response {
  const headers: Record<string, string> = { "content-type": "text/plain", "cache-control": "max-age=60" };
  if (withLength) headers["content-length"] = String(body.byteLength);
  let sent = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent) return c.close();
      sent = true;
      for (let at = 0; at < body.byteLength; at += 100_000) c.enqueue(body.slice(at, at + 100_000));
    },
  });
  return new Response(stream, { headers });
}

describe("compression's budget and slices", () => {
  it("compresses a body of many slices into one valid br or gzip stream, and gives its budget back", async () => {
    const body = text(COMPRESS_SLICE_BYTES * 5 + 123);
    const budget = new CompressBudget(1 << 20);
    const br = await compressed(edge, request("br"), origin(body), budget);
    expect(br.headers.get("content-encoding")).toBe("br");
    expect(new Uint8Array(brotliDecompressSync(new Uint8Array(await br.arrayBuffer())))).toEqual(body);
    const gz = await compressed(edge, request("gzip"), origin(body, false), budget);
    expect(gz.headers.get("content-encoding")).toBe("gzip");
    expect(new Uint8Array(gunzipSync(new Uint8Array(await gz.arrayBuffer())))).toEqual(body);
    expect(budget.inUse).toBe(0);
  });

  it("passes a body that does not fit the budget uncompressed, known length or not", async () => {
    const body = text(600_000);
    const budget = new CompressBudget(1 << 20);
    expect(budget.take(500_000)).toBe(true); // another compression holds half of it
    for (const withLength of [true, false]) {
      const r = await compressed(edge, request("br, gzip"), origin(body, withLength), budget);
      expect([r.headers.get("content-encoding"), r.headers.get("vary")]).toEqual([null, "Accept-Encoding"]);
      expect(new Uint8Array(await r.arrayBuffer())).toEqual(body);
      expect(budget.inUse).toBe(500_000);
    }
    budget.give(500_000);
    const r = await compressed(edge, request("br"), origin(body), budget);
    expect(r.headers.get("content-encoding")).toBe("br");
    expect(budget.inUse).toBe(0);
  });
});
