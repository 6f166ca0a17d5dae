/**
 * Compression at a real edge on bare workerd (where a Response's Content-Encoding would otherwise make the runtime
 * encode or decode bodies): br/gzip/identity variants stored once, origin-compressed bodies passed byte for byte
 * with their Content-Length on MISS and HIT, a Range of a stored compressed variant, no compression of images.
 * Raw HTTP (node:http), so nothing decodes what the edge sends.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { get as httpGet } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { startEdgeWorkerd, type RunningWorkerdEdge } from "../../src/node/workerd-host.ts";

const HTML = "<!doctype html><title>parrot</title><p>" + "the parrot repeats what it hears. ".repeat(600) + "</p>\n";
const GZIPPED = gzipSync(new TextEncoder().encode(HTML));
let served: Served;
let edge: RunningWorkerdEdge;
let dir: string;
const originHits = new Map<string, number>();

beforeAll(async () => {
  served = await serveFetch((req) => {
    const path = new URL(req.url).pathname;
    originHits.set(path, (originHits.get(path) ?? 0) + 1);
    const cc = { "cache-control": "max-age=600" };
    if (path === "/page.html") return new Response(HTML, { headers: { ...cc, "content-type": "text/html; charset=utf-8", etag: '"v1"' } });
    if (path === "/pre.html") {
      return new Response(GZIPPED, { headers: { ...cc, "content-type": "text/html", "content-encoding": "gzip", "content-length": String(GZIPPED.byteLength) } });
    }
    if (path === "/photo.jpg") return new Response(new Uint8Array(20_000).fill(7), { headers: { ...cc, "content-type": "image/jpeg" } });
    return new Response("not found", { status: 404 });
  });
  dir = mkdtempSync(join(tmpdir(), "parrot-compress-"));
  edge = await startEdgeWorkerd({
    configText: `[edge]\nname = "cz"\norigin = "${served.url}"\naccess_log = false\n`,
    storeDir: join(dir, "store"),
    log: () => {},
  });
}, 60_000);

afterAll(async () => {
  await edge?.stop();
  await served?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
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

  it("does not compress images", async () => {
    const r = await raw("/photo.jpg", { "accept-encoding": "gzip, br" });
    expect([r.headers["content-encoding"], r.headers["vary"], r.body.byteLength]).toEqual([undefined, undefined, 20_000]);
  });
});
