/**
 * Compression at a real edge on bare workerd (where a Response's Content-Encoding would otherwise make the runtime
 * encode or decode bodies): br/gzip/identity variants stored once, origin-compressed bodies passed byte for byte
 * with their Content-Length on MISS and HIT, a Range of a stored compressed variant, no compression of images.
 * Raw HTTP (node:http), so nothing decodes what the edge sends.
 */
import { get as httpGet } from "node:http";
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FetchHandler } from "../../src/node/serve-fetch.ts";
import type { RunningWorkerdEdge } from "../../src/node/workerd-host.ts";
import { startEdgeAndOrigin, type EdgeAndOrigin } from "../support/workerd-edge.ts";

const HTML = "<!doctype html><title>parrot</title><p>" + "the parrot repeats what it hears. ".repeat(600) + "</p>\n";
/** Large text that compresses neither too well nor too fast: words picked by a fixed pseudo-random sequence. */
const BIG_BYTES = 12 * 1024 * 1024;
const BIG = (() => {
  const words = "parrot cache edge origin stale fresh purge vary range slice store disk brotli gzip quality window".split(" ");
  const out = new Uint8Array(BIG_BYTES);
  let x = 12345;
  let at = 0;
  while (at < BIG_BYTES) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0; // xorshift32
    const w = new TextEncoder().encode(words[x % words.length]! + (x & 0x40000000 ? " " : "\n"));
    out.set(w.subarray(0, BIG_BYTES - at), at);
    at += w.byteLength;
  }
  return out;
})();
/** Settles when the origin's body of a path was read to its end. */
const bodySent = new Map<string, { promise: Promise<void>; resolve: () => void }>();
function sent(path: string) {
  if (!bodySent.has(path)) {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    bodySent.set(path, { promise, resolve });
  }
  return bodySent.get(path)!;
}
/** /big-b.txt's body waits after its first MiB until this path's body was sent. */
const bigBWaitsFor = "/big-c.txt";

/** BIG as a stream of 1 MiB chunks; `hold` is awaited after the first chunk. */
function bigBody(path: string, hold?: Promise<void>): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      if (at === 1 << 20 && hold) await hold;
      if (at >= BIG_BYTES) {
        c.close();
        sent(path).resolve();
        return;
      }
      c.enqueue(BIG.slice(at, at + (1 << 20)));
      at += 1 << 20;
    },
  });
}
const GZIPPED = gzipSync(new TextEncoder().encode(HTML));
let box: EdgeAndOrigin;
let edge: RunningWorkerdEdge;
const originHits = new Map<string, number>();

beforeAll(async () => {
  const handler: FetchHandler = (req) => {
    const path = new URL(req.url).pathname;
    originHits.set(path, (originHits.get(path) ?? 0) + 1);
    const cc = { "cache-control": "max-age=600" };
    if (path === "/page.html") return new Response(HTML, { headers: { ...cc, "content-type": "text/html; charset=utf-8", etag: '"v1"' } });
    if (path === "/pre.html") {
      return new Response(GZIPPED, { headers: { ...cc, "content-type": "text/html", "content-encoding": "gzip", "content-length": String(GZIPPED.byteLength) } });
    }
    if (path.startsWith("/big-")) {
      return new Response(bigBody(path, path === "/big-b.txt" ? sent(bigBWaitsFor).promise : undefined), {
        headers: { ...cc, "content-type": "text/plain", "content-length": String(BIG_BYTES) },
      });
    }
    if (path === "/photo.jpg") return new Response(new Uint8Array(20_000).fill(7), { headers: { ...cc, "content-type": "image/jpeg" } });
    return new Response("not found", { status: 404 });
  };
  box = await startEdgeAndOrigin(
    "compress",
    handler,
    (origin) => `[edge]\nname = "cz"\norigin = "${origin}"\naccess_log = false\ncompress_max_bytes = ${16 << 20}\ncompress_budget_bytes = ${20 << 20}\n[admin]\nmetrics_public = true\n`,
  );
  edge = box.edge;
}, 60_000);

afterAll(async () => {
  await box?.stop();
});

function raw(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((done, fail) => {
    httpGet(`${edge.url}${path}`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => done({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on("error", fail);
  });
}

describe("compression at the edge (bare workerd)", () => {
  it("a browser gets br, a gzip-only client gzip, curl identity; each variant stored once", async () => {
    const br = await raw("/page.html", { "accept-encoding": "gzip, deflate, br, zstd" });
    expect([br.headers["x-cache-status"], br.headers["content-encoding"], br.headers["vary"]]).toEqual(["MISS", "br", "Accept-Encoding"]);
    expect(brotliDecompressSync(br.body).toString()).toBe(HTML);
    const hit = await raw("/page.html", { "accept-encoding": "gzip, deflate, br" });
    expect([hit.headers["x-cache-status"], hit.headers["content-encoding"], hit.headers["content-length"]]).toEqual(["HIT", "br", String(br.body.byteLength)]);
    expect(hit.body.equals(br.body)).toBe(true);
    const gz = await raw("/page.html", { "accept-encoding": "gzip" });
    expect(gz.headers["content-encoding"]).toBe("gzip");
    expect(gunzipSync(gz.body).toString()).toBe(HTML);
    const plain = await raw("/page.html");
    expect([plain.headers["content-encoding"], plain.body.toString()]).toEqual([undefined, HTML]);
    for (const ae of ["br", "gzip", ""]) expect((await raw("/page.html", ae ? { "accept-encoding": ae } : {})).headers["x-cache-status"]).toBe("HIT");
    expect(originHits.get("/page.html")).toBe(3);
    console.log(`compression: ${HTML.length} bytes of HTML → br ${br.body.byteLength}, gzip ${gz.body.byteLength}`);
  });

  it("passes an origin-gzipped body byte for byte with its Content-Length, MISS and HIT", async () => {
    for (const xcs of ["MISS", "HIT"]) {
      const r = await raw("/pre.html", { "accept-encoding": "gzip" });
      expect([r.headers["x-cache-status"], r.headers["content-encoding"], r.headers["content-length"]]).toEqual([xcs, "gzip", String(GZIPPED.byteLength)]);
      expect(r.body.equals(Buffer.from(GZIPPED))).toBe(true);
    }
  });

  it("answers a Range of a stored compressed variant from its own bytes", async () => {
    const whole = await raw("/page.html", { "accept-encoding": "gzip" });
    const part = await raw("/page.html", { "accept-encoding": "gzip", range: "bytes=10-49" });
    expect([part.status, part.headers["content-encoding"], part.headers["content-range"]]).toEqual([206, "gzip", `bytes 10-49/${whole.body.byteLength}`]);
    expect(part.body.equals(whole.body.subarray(10, 50))).toBe(true);
  });

  it("serves other requests while it compresses a large body", async () => {
    let bigDone = false;
    const big = raw("/big-a.txt", { "accept-encoding": "br" }).finally(() => (bigDone = true));
    await sent("/big-a.txt").promise;
    // Until the big answer arrives: the edge's metrics, asked again and again; some are answered while it compresses.
    let probes = 0;
    let duringCompression = 0;
    let slowest = 0;
    while (!bigDone && probes < 5000) {
      const t = performance.now();
      const m = await raw("/.well-known/cdn/metrics");
      slowest = Math.max(slowest, performance.now() - t);
      probes++;
      if (Number(/^parrot_edge_compressing_bytes (\d+)/m.exec(m.body.toString())?.[1]) > 0) duringCompression++;
    }
    const b = await big;
    expect(b.headers["content-encoding"]).toBe("br");
    expect(brotliDecompressSync(b.body).equals(Buffer.from(BIG))).toBe(true);
    console.log(
      `12 MiB compressed (br) to ${b.body.byteLength} bytes; meanwhile ${probes} other requests answered, ${duringCompression} of them during the compression, the slowest in ${slowest.toFixed(0)} ms`,
    );
    // Compressed in one call, no other request is answered during the compression.
    expect(duringCompression).toBeGreaterThanOrEqual(3);
    expect(/^parrot_edge_compress_held_bytes 0$/m.test((await raw("/.well-known/cdn/metrics")).body.toString())).toBe(true);
  }, 120_000);

  it("compresses within a budget: a large body that does not fit passes uncompressed", async () => {
    // /big-b.txt holds 12 of the 20 MiB budget while its body waits for /big-c.txt's to be sent.
    const [b, c] = await Promise.all([raw("/big-b.txt", { "accept-encoding": "br" }), raw("/big-c.txt", { "accept-encoding": "br" })]);
    expect(b.headers["content-encoding"]).toBe("br");
    expect(brotliDecompressSync(b.body).equals(Buffer.from(BIG))).toBe(true);
    expect([c.headers["content-encoding"], c.headers["vary"], c.body.byteLength]).toEqual([undefined, "Accept-Encoding", BIG_BYTES]);
    expect(c.body.equals(Buffer.from(BIG))).toBe(true);
    // The budget was given back: the next large compression gets it.
    const cz = await raw("/big-c.txt", { "accept-encoding": "gzip" });
    expect(cz.headers["content-encoding"]).toBe("gzip");
    expect(gunzipSync(cz.body).equals(Buffer.from(BIG))).toBe(true);
  }, 120_000);

  it("does not compress images", async () => {
    const r = await raw("/photo.jpg", { "accept-encoding": "gzip, br" });
    expect([r.headers["content-encoding"], r.headers["vary"], r.body.byteLength]).toEqual([undefined, undefined, 20_000]);
  });
});
