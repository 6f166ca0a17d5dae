/**
 * Large objects through the edge as a real process (`npm run edge`), over real HTTP: bare workerd with the disk store,
 * the same with two edge processes and a store process (`--processes 2`, slices coalesced box-wide through the
 * store's locks), and Miniflare (its Cache API). The origin serves generated objects (byte i is (i + version) mod 251,
 * so every byte is checked without storing the object) with Range, strong ETags and If-Match, and counts the bytes
 * it sends. Slices are the defaults (16 MiB; objects over 32 MiB are sliced).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answerGenerated, chunkMatches, type GeneratedObject } from "../../src/demo-origin/generated.ts";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { storeBytes } from "../../src/store/scan.ts";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SLICE = 16 * MiB; // the default slice_bytes
const TOKEN = "mirror-test-token-0123456789";

/** The origin: generated objects by path, the bytes and requests each one cost, and bodies cut short on request. */
class MirrorOrigin {
  objects = new Map<string, GeneratedObject>();
  sent = new Map<string, number>();
  requests = new Map<string, string[]>();
  /** Paths whose answers stop after this many body bytes (the connection is closed). */
  cut = new Map<string, number>();
  served!: Served;

  async start() {
    this.served = await serveFetch((req) => {
      const path = new URL(req.url).pathname;
      this.requests.set(path, [...(this.requests.get(path) ?? []), req.headers.get("range") ?? ""]);
      const obj = this.objects.get(path);
      if (!obj) return new Response("not here\n", { status: 404 });
      const res = answerGenerated(req, obj, (n) => this.sent.set(path, (this.sent.get(path) ?? 0) + n));
      const cut = this.cut.get(path);
      return cut === undefined || !res.body ? res : new Response(cutAfter(res.body, cut), res);
    });
  }
  bytes(path: string): number {
    return this.sent.get(path) ?? 0;
  }
}

/** A body that errors after `n` bytes: serveFetch then closes the connection mid-body. */
function cutAfter(body: ReadableStream<Uint8Array>, n: number): ReadableStream<Uint8Array> {
  let seen = 0;
  return body.pipeThrough(
    new TransformStream({
      transform(chunk, c) {
        if (seen + chunk.byteLength > n) {
          c.enqueue(chunk.subarray(0, n - seen));
          c.error(new Error("cut"));
        } else c.enqueue(chunk);
        seen += chunk.byteLength;
      },
    }),
  );
}

/** Reads a body, checking every chunk against the object's bytes from `start`; how far it got and whether it ended. */
async function check(res: Response, start: number, seed = 0): Promise<{ bytes: number; right: boolean; ended: boolean }> {
  let bytes = 0;
  let right = true;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (!chunkMatches(chunk, start + bytes, seed)) right = false;
      bytes += chunk.byteLength;
    }
    return { bytes, right, ended: true };
  } catch {
    return { bytes, right, ended: false };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Runtime {
  name: string;
  args: string[];
  /** The multi-GB object for segments and the full read. */
  big: number;
  /** Hot tier off with several processes (each has its own). */
  toml: string;
  disk: boolean;
}

const RUNTIMES: Runtime[] = [
  { name: "workerd", args: ["--runtime", "workerd"], big: 2 * 1024 * MiB + 12_345, toml: "", disk: true },
  { name: "workerd --processes 2", args: ["--runtime", "workerd", "--processes", "2"], big: 1536 * MiB + 777, toml: "hot_max_bytes = 0", disk: true },
  { name: "miniflare", args: ["--runtime", "miniflare"], big: 160 * MiB + 5, toml: "", disk: false },
];

describe.each(RUNTIMES)("mirrors on $name", (rt) => {
  const origin = new MirrorOrigin();
  let dir: string;
  let config: string;
  let edge: Running;
  let url: string;

  const startEdge = async (port = 0) => {
    edge = await startNodeScript(
      "scripts/edge.ts",
      ["--config", config, "--origin", origin.served.url, "--port", String(port), "--name", "mirror", "--store", join(dir, "store"), ...rt.args],
      /edge ready: (\S+)/,
      60_000,
    );
    url = edge.match[1]!;
  };
  const get = (path: string, init?: RequestInit) => fetch(url + path, init);
  const put = (path: string, obj: GeneratedObject) =>
    origin.objects.set(path, { cacheControl: "public, max-age=3600", contentType: "application/x-iso9660-image", ...obj });

  beforeAll(async () => {
    await origin.start();
    dir = mkdtempSync(join(tmpdir(), "parrot-mirrors-e2e-"));
    config = join(dir, "cdn.toml");
    writeFileSync(config, `[edge]\nname = "mirror"\norigin = "${origin.served.url}"\naccess_log = false\nstore_max_bytes = 8000000000\n${rt.toml}\n[admin]\ntoken = "${TOKEN}"\n`);
    await startEdge();
  });

  afterAll(async () => {
    await edge?.stop();
    await origin.served?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("a deep Range on a cold cache costs the origin one slice; the same Range again costs nothing", async () => {
    const p = "/deep.iso";
    const size = 1_500_000_000;
    put(p, { size });
    const at = 1_200_000_000;
    const t0 = Date.now();
    const a = await get(p, { headers: { range: `bytes=${at}-${at + 999}` } });
    const ms = Date.now() - t0;
    expect([a.status, a.headers.get("x-cache-status"), a.headers.get("content-range")]).toEqual([206, "MISS", `bytes ${at}-${at + 999}/${size}`]);
    expect(await check(a, at)).toEqual({ bytes: 1000, right: true, ended: true });
    expect(origin.bytes(p)).toBe(SLICE);
    const b = await get(p, { headers: { range: `bytes=${at}-${at + 999}` } });
    expect([b.status, b.headers.get("x-cache-status")]).toEqual([206, "HIT"]);
    expect(await check(b, at)).toEqual({ bytes: 1000, right: true, ended: true });
    expect(origin.bytes(p)).toBe(SLICE);
    console.log(`${rt.name}: 1,000 bytes at 1.2 GB of a 1.5 GB object, cold: ${ms} ms, origin sent ${origin.bytes(p)} bytes`);
  });

  it("8 parallel segments of a multi-GB object cost the origin one copy; a full GET afterwards comes from the cache, every byte right", async () => {
    const p = "/big.iso";
    const size = rt.big;
    put(p, { size });
    const segment = Math.ceil(size / 8);
    const t0 = Date.now();
    const parts = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const start = i * segment;
        const end = Math.min(size, start + segment) - 1;
        const res = await get(p, { headers: { range: `bytes=${start}-${end}` } });
        expect(res.status).toBe(206);
        return { ...(await check(res, start)), want: end - start + 1 };
      }),
    );
    const coldMs = Date.now() - t0;
    for (const part of parts) expect(part).toEqual({ bytes: part.want, right: true, ended: true, want: part.want });
    const ratio = origin.bytes(p) / size;
    expect(ratio).toBeGreaterThanOrEqual(1);
    expect(ratio, `origin requests: ${origin.requests.get(p)?.join(", ")}`).toBeLessThanOrEqual(1.05);
    const sentBefore = origin.bytes(p);
    const t1 = Date.now();
    const whole = await get(p);
    expect([whole.status, whole.headers.get("x-cache-status"), whole.headers.get("content-length")]).toEqual([200, "HIT", String(size)]);
    expect(await check(whole, 0)).toEqual({ bytes: size, right: true, ended: true });
    const warmMs = Date.now() - t1;
    expect(origin.bytes(p)).toBe(sentBefore);
    const mbs = (ms: number) => Math.round(size / 1e6 / (ms / 1000));
    console.log(`${rt.name}: ${size} bytes, 8 segments cold ${mbs(coldMs)} MB/s (origin sent ${ratio.toFixed(4)} x the object), full GET warm ${mbs(warmMs)} MB/s`);
  }, 600_000);

  it("a resumed download with curl -C - continues from the cache, the file byte for byte right", async () => {
    const p = "/resume.iso";
    const size = 100 * MiB + 99;
    put(p, { size });
    const file = join(dir, "resume.iso");
    // The first attempt stops after ~30 MB (curl's own limit), the second resumes where the file ends.
    await run("curl", ["-s", "-o", file, "-r", `0-${30 * MiB - 1}`, url + p]);
    expect(statSync(file).size).toBe(30 * MiB);
    const out = await run("curl", ["-s", "-C", "-", "-o", file, "-w", "%{http_code} %{size_download}", "-D", join(dir, "resume.h"), url + p]);
    expect(out.stdout).toBe(`206 ${size - 30 * MiB}`);
    expect(readFileSync(join(dir, "resume.h"), "utf8")).toMatch(/x-cache-status: (HIT|MISS)/i);
    const bytes = new Uint8Array(readFileSync(file));
    expect(bytes.byteLength).toBe(size);
    expect(chunkMatches(bytes, 0)).toBe(true);
    rmSync(file);
    // The whole object came from the origin once.
    expect(origin.bytes(p)).toBe(size);
  });

  it("a new version at the origin mid-download ends the answer rather than mixing bytes; the next download is the new version", async () => {
    const p = "/changing.iso";
    const size = 120 * MiB;
    put(p, { size, seed: 0 });
    const res = await get(p);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let got = 0;
    let right = true;
    while (got < 40 * MiB) {
      const { value } = await reader.read();
      if (!value) break;
      if (!chunkMatches(value, got, 0)) right = false;
      got += value.byteLength;
    }
    put(p, { size, seed: 1 }); // new bytes, new ETag
    let ended = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          ended = true;
          break;
        }
        if (!chunkMatches(value, got, 0)) right = false;
        got += value.byteLength;
      }
    } catch {
      // the connection was closed: the answer did not go on with other bytes
    }
    expect(right).toBe(true);
    expect(ended).toBe(false);
    expect(got).toBeLessThan(size);
    const next = await get(p);
    expect(await check(next, 0, 1)).toEqual({ bytes: size, right: true, ended: true });
  });

  it("an object up to slice_threshold_bytes is stored whole: its first slice and the rest, sent once", async () => {
    const p = "/medium.deb";
    const size = 20 * MiB + 11;
    put(p, { size });
    const a = await get(p);
    expect([a.status, a.headers.get("x-cache-status"), a.headers.get("content-length")]).toEqual([200, "MISS", String(size)]);
    expect(await check(a, 0)).toEqual({ bytes: size, right: true, ended: true });
    expect(origin.requests.get(p)).toEqual([`bytes=0-${SLICE - 1}`, `bytes=${SLICE}-`]);
    expect(origin.bytes(p)).toBe(size);
    await sleep(300);
    const b = await get(p, { headers: { range: `bytes=${size - 10}-` } });
    expect([b.status, b.headers.get("x-cache-status")]).toEqual([206, "HIT"]);
    expect(await check(b, size - 10)).toEqual({ bytes: 10, right: true, ended: true });
  });

  it("an origin that ignores Range: stored whole when it fits, passed through (not stored) when larger than max_object_bytes", async () => {
    const fits = "/norange-fits.bin";
    put(fits, { size: 40 * MiB, ranges: false });
    const a = await get(fits, { headers: { range: "bytes=1000-1999" } });
    expect([a.status, a.headers.get("x-cache-status")]).toEqual([206, "MISS"]);
    expect(await check(a, 1000)).toEqual({ bytes: 1000, right: true, ended: true });
    await sleep(500);
    const b = await get(fits, { headers: { range: "bytes=1000-1999" } });
    expect([b.status, b.headers.get("x-cache-status")]).toEqual([206, "HIT"]);
    await b.arrayBuffer();
    const huge = "/norange-huge.bin";
    put(huge, { size: 600 * MiB, ranges: false });
    for (let i = 0; i < 2; i++) {
      const r = await get(huge, { headers: { range: "bytes=5-14" } });
      expect([r.status, r.headers.get("x-cache-status"), r.headers.get("cache-status")]).toEqual([206, "MISS", "mirror; fwd=uri-miss"]);
      expect(await check(r, 5)).toEqual({ bytes: 10, right: true, ended: true });
    }
  });

  it("coalesces 30 concurrent requests for one missing slice into one origin request", async () => {
    const p = "/coalesce.iso";
    put(p, { size: 300 * MiB });
    await (await get(p, { headers: { range: "bytes=0-0" } })).arrayBuffer(); // the record
    const at = 200 * MiB + 17;
    const all = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => check(await get(p, { headers: { range: `bytes=${at + i}-${at + i + 99_999}` } }), at + i)),
    );
    for (const r of all) expect(r).toEqual({ bytes: 100_000, right: true, ended: true });
    expect(origin.requests.get(p)!.filter((r) => r.startsWith(`bytes=${Math.floor(at / SLICE) * SLICE}-`))).toHaveLength(1);
  });

  it("a purge removes every slice, on disk too; a restart keeps the slices of what was not purged", async () => {
    const kept = "/kept.iso";
    const purged = "/purged.iso";
    put(kept, { size: 50 * MiB + 3 });
    put(purged, { size: 60 * MiB + 3 });
    for (const p of [kept, purged]) expect((await check(await get(p), 0)).ended).toBe(true);
    await sleep(500);
    const before = rt.disk ? storeBytes(join(dir, "store")) : 0;
    const res = await fetch(`${url}/.well-known/cdn/purge`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ urls: [url + purged] }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    if (rt.disk) {
      await sleep(500);
      expect(before - storeBytes(join(dir, "store"))).toBeGreaterThanOrEqual(60 * MiB);
    }
    const again = await get(purged, { headers: { range: "bytes=0-9" } });
    expect(again.headers.get("x-cache-status")).toBe("MISS");
    await again.arrayBuffer();
    if (!rt.disk) return; // Miniflare's cache lives in the process
    const port = Number(new URL(url).port);
    await edge.stop();
    await startEdge(port);
    const sent = origin.bytes(kept);
    const after = await get(kept);
    expect(after.headers.get("x-cache-status")).toBe("HIT");
    expect(await check(after, 0)).toEqual({ bytes: 50 * MiB + 3, right: true, ended: true });
    expect(origin.bytes(kept)).toBe(sent);
  });

  it("a body shorter than its Content-Length is never stored or served as complete", async () => {
    for (const [p, size] of [["/cut-small.bin", 3 * MiB], ["/cut-sliced.iso", 80 * MiB]] as const) {
      put(p, { size });
      origin.cut.set(p, 2 * MiB + 1000); // inside the first slice
      const res = await get(p);
      const r = await check(res, 0);
      expect(r.ended).toBe(false);
      expect(r.right).toBe(true);
      origin.cut.delete(p);
      await sleep(300);
      const again = await get(p);
      expect(again.headers.get("x-cache-status")).toBe("MISS");
      expect(await check(again, 0)).toEqual({ bytes: size, right: true, ended: true });
    }
  });
});
