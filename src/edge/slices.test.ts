/**
 * Large objects in slices, through the whole engine with a fake clock: a MemoryStore and a scripted origin that
 * honours Range like a static file server (64 KiB slices, objects up to 256 KiB stored whole).
 */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { EdgeCache } from "./engine.ts";
import { originFetcher, type OriginRequest } from "./origin.ts";
import { MemoryStore } from "./store.ts";
import { pattern, ScriptedOrigin, type Script } from "../../test/support/scripted-origin.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const KiB = 1024;
const SLICE = 64 * KiB;
const SIZE = 1_000_000; // 16 slices, the last one shorter

function setup(extraToml = "") {
  let now = T0;
  const clock = { now: () => now, advance: (s: number) => void (now += s * 1000) };
  const origin = new ScriptedOrigin(clock.now);
  const threshold = extraToml.includes("slice_threshold_bytes") ? "" : `slice_threshold_bytes = ${4 * SLICE}\n`;
  const lock = extraToml.includes("lock_timeout_ms") ? "" : "lock_timeout_ms = 2000\n";
  const config = parseConfig(`[edge]\nname = "t1"\norigin = "http://origin.test"\n${lock}slice_bytes = ${SLICE}\n${threshold}${extraToml}`);
  const store = new MemoryStore(clock.now);
  const pending: Promise<unknown>[] = [];
  const fetchImpl = async (input: Request | string, init?: RequestInit) => origin.handle(new Request(input, init));
  // What the engine asked the origin for (the origin's own view is `origin`).
  const asked: OriginRequest[] = [];
  const fetcher = originFetcher(config.edge!, fetchImpl);
  const cache = new EdgeCache({ edge: config.edge!, rules: config.rules, store, origin: (c, ip, req) => (asked.push(req), fetcher(c, ip, req)), now: clock.now });
  const ctx = { waitUntil: (p: Promise<unknown>) => void pending.push(p), clientIp: "192.0.2.7" };
  async function settle() {
    while (pending.length) await Promise.allSettled(pending.splice(0));
  }
  async function get(path: string, headers: Record<string, string> = {}, method = "GET") {
    const res = await cache.handle(new Request(`http://www.example.org${path}`, { method, headers }), ctx);
    const body = new Uint8Array(await res.arrayBuffer());
    await settle();
    return { res, body, status: res.status, xcs: res.headers.get("x-cache-status"), cs: res.headers.get("cache-status") };
  }
  return { clock, origin, asked, store, cache, ctx, get, settle };
}

const iso = (extra: Partial<Script> = {}): Script => ({
  ranges: true,
  size: SIZE,
  headers: { "cache-control": "max-age=3600", etag: '"v1"', "last-modified": "Mon, 01 Dec 2025 00:00:00 GMT", "content-type": "application/x-iso9660-image" },
  ...extra,
});
const bytes = (start: number, end: number, seed = 0) => pattern(SIZE, seed).subarray(start, end + 1);

describe("sliced objects", () => {
  it("a MISS the probe brings whole is not idle-limited: the origin's body goes to the client and the store as it came", async () => {
    const t = setup();
    t.origin.set("/small", iso({ size: 1000 }));
    const a = await t.get("/small");
    expect([a.status, a.xcs, a.res.headers.get("content-length")]).toEqual([200, "MISS", "1000"]);
    expect(a.body).toEqual(pattern(1000));
    // No JavaScript stream watching the body (idle.ts): only a slice, which holds a renewed lock, needs one.
    expect(t.asked.map((r) => r.idleLimit ?? false)).toEqual([false]);
    const b = await t.get("/small");
    expect([b.xcs, b.body]).toEqual(["HIT", pattern(1000)]);
  });

  it("a deep Range on a cold cache costs the origin one slice, and the same Range again nothing", async () => {
    const t = setup();
    t.origin.set("/iso", iso());
    const a = await t.get("/iso", { range: "bytes=700000-700999" });
    expect([a.status, a.xcs, a.res.headers.get("content-range")]).toEqual([206, "MISS", `bytes 700000-700999/${SIZE}`]);
    expect(a.body).toEqual(bytes(700000, 700999));
    expect(a.cs).toBe("t1; fwd=uri-miss; stored");
    expect(t.origin.ranges.get("/iso")).toEqual([`bytes=${10 * SLICE}-${11 * SLICE - 1}`]);
    expect(t.origin.bytesOf("/iso")).toBe(SLICE);
    const b = await t.get("/iso", { range: "bytes=700000-700999" });
    expect([b.status, b.xcs]).toEqual([206, "HIT"]);
    expect(b.body).toEqual(bytes(700000, 700999));
    expect(t.origin.hitsOf("/iso")).toBe(1);
  });

  it("a Range across a slice boundary fetches the next slice too, and says fwd=partial", async () => {
    const t = setup();
    t.origin.set("/iso", iso());
    await t.get("/iso", { range: `bytes=${SLICE - 10}-${SLICE - 1}` });
    const r = await t.get("/iso", { range: `bytes=${SLICE - 10}-${SLICE + 9}` });
    expect(r.body).toEqual(bytes(SLICE - 10, SLICE + 9));
    expect([r.xcs, r.cs]).toEqual(["HIT", "t1; hit; ttl=3600"]); // the answer's first slice was stored
    const deep = await t.get("/iso", { range: `bytes=${5 * SLICE}-${5 * SLICE + 9}` });
    expect([deep.xcs, deep.cs]).toEqual(["MISS", "t1; fwd=partial; stored"]);
    expect(t.origin.hitsOf("/iso")).toBe(3);
    expect(t.origin.bytesOf("/iso")).toBe(3 * SLICE);
  });

  it("a full GET of a large object probes its first slice, then streams every slice in order; a second GET is a HIT", async () => {
    const t = setup();
    t.origin.set("/iso", iso());
    const a = await t.get("/iso");
    expect([a.status, a.xcs, a.res.headers.get("content-length")]).toEqual([200, "MISS", String(SIZE)]);
    expect(a.body).toEqual(pattern(SIZE));
    const asked = t.origin.ranges.get("/iso")!;
    expect(asked).toEqual(Array.from({ length: 16 }, (_, i) => `bytes=${i * SLICE}-${Math.min(SIZE, (i + 1) * SLICE) - 1}`));
    expect(t.origin.bytesOf("/iso")).toBe(SIZE);
    const b = await t.get("/iso");
    expect([b.xcs, b.res.headers.get("accept-ranges")]).toEqual(["HIT", "bytes"]);
    expect(b.body).toEqual(pattern(SIZE));
    expect(t.origin.hitsOf("/iso")).toBe(16);
  });

  it("stores an object up to the threshold whole: the probe's slice and the rest (If-Range), the object sent once", async () => {
    const t = setup();
    t.origin.set("/small", iso({ size: 200_000 }));
    const a = await t.get("/small");
    expect([a.status, a.xcs, a.body.byteLength]).toEqual([200, "MISS", 200_000]);
    expect(a.body).toEqual(pattern(200_000));
    expect(t.origin.ranges.get("/small")).toEqual([`bytes=0-${SLICE - 1}`, `bytes=${SLICE}-`]);
    expect(t.origin.lastRequest("/small")!["if-range"]).toBe('"v1"');
    expect(t.origin.bytesOf("/small")).toBe(200_000);
    expect(t.store.size).toBe(1); // one entry, no record and slices
    const r = await t.get("/small", { range: "bytes=100-199" });
    expect([r.status, r.xcs]).toEqual([206, "HIT"]);
    expect(r.body).toEqual(pattern(200_000).subarray(100, 200));
  });

  it("an object that changes between the probe and the rest comes whole, once", async () => {
    const t = setup();
    t.origin.set("/small", iso({ size: 200_000 }));
    // The rest is asked with If-Range "v1": the origin has v2 by then and answers 200 with all of it.
    const origin = t.origin.handle;
    let n = 0;
    t.origin.handle = async (req) => {
      if (n++ === 1) t.origin.set("/small", iso({ size: 200_000, seed: 5, headers: { ...iso().headers, etag: '"v2"' } }));
      return origin(req);
    };
    const a = await t.get("/small");
    expect([a.status, a.body.byteLength]).toEqual([200, 200_000]);
    expect(a.body).toEqual(pattern(200_000, 5));
    expect((await t.get("/small")).body).toEqual(pattern(200_000, 5));
  });

  it("coalesces concurrent requests for the same missing slice into one origin request", async () => {
    const t = setup();
    t.origin.set("/iso", iso());
    await t.get("/iso", { range: "bytes=0-9" }); // the record
    t.origin.set("/iso", iso({ delayMs: 50 }));
    const all = await Promise.all(Array.from({ length: 20 }, (_, i) => t.get("/iso", { range: `bytes=${8 * SLICE + i}-${8 * SLICE + 100}` })));
    for (const [i, r] of all.entries()) expect(r.body).toEqual(bytes(8 * SLICE + i, 8 * SLICE + 100));
    expect(t.origin.hitsOf("/iso")).toBe(2);
    expect(all.filter((r) => r.xcs === "MISS")).toHaveLength(1);
  });

  it("a slice that takes longer than lock_timeout_ms to arrive still costs the origin one request: its lock is held while it is stored", async () => {
    const t = setup("lock_timeout_ms = 200");
    t.origin.set("/iso", iso());
    await t.get("/iso", { range: "bytes=0-9" }); // the record
    t.origin.set("/iso", iso({ trickleMs: 3_000 })); // each slice arrives over 3 s (a local lock lasts at least 1 s)
    const all = await Promise.all(Array.from({ length: 6 }, (_, i) => t.get("/iso", { range: `bytes=${8 * SLICE + i}-${8 * SLICE + 100}` })));
    for (const [i, r] of all.entries()) expect(r.body).toEqual(bytes(8 * SLICE + i, 8 * SLICE + 100));
    expect(t.origin.ranges.get("/iso")).toEqual([`bytes=0-${SLICE - 1}`, `bytes=${8 * SLICE}-${9 * SLICE - 1}`]);
  });

  it("a slice fetch the origin does not answer frees its waiters after lock_timeout_ms: they fetch the bytes themselves", async () => {
    const t = setup("lock_timeout_ms = 200");
    t.origin.set("/iso", iso());
    await t.get("/iso", { range: "bytes=0-9" });
    t.origin.set("/iso", iso({ delayMs: 3_000 })); // no byte for 3 s (a local lock lasts at least 1 s)
    const range = { range: `bytes=${8 * SLICE}-${8 * SLICE + 100}` };
    const first = t.get("/iso", range);
    await new Promise((r) => setTimeout(r, 50));
    t.origin.set("/iso", iso());
    const t0 = Date.now();
    const second = await t.cache.handle(new Request("http://www.example.org/iso", { headers: range }), t.ctx);
    expect(new Uint8Array(await second.arrayBuffer())).toEqual(bytes(8 * SLICE, 8 * SLICE + 100));
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect((await first).body).toEqual(bytes(8 * SLICE, 8 * SLICE + 100));
  });

  it("answers HEAD, 304, 416, If-Range and multiple ranges from the record", async () => {
    const t = setup();
    t.origin.set("/iso", iso());
    await t.get("/iso", { range: "bytes=0-0" });
    const head = await t.get("/iso", {}, "HEAD");
    expect([head.status, head.xcs, head.res.headers.get("content-length"), head.body.byteLength]).toEqual([200, "HIT", String(SIZE), 0]);
    expect((await t.get("/iso", { "if-none-match": '"v1"' })).status).toBe(304);
    const bad = await t.get("/iso", { range: `bytes=${SIZE}-` });
    expect([bad.status, bad.res.headers.get("content-range")]).toEqual([416, `bytes */${SIZE}`]);
    const stale = await t.get("/iso", { range: "bytes=0-9", "if-range": '"v0"' });
    expect([stale.status, stale.body.byteLength]).toEqual([200, SIZE]);
    const multi = await t.get("/iso", { range: `bytes=0-1,${9 * SLICE}-${9 * SLICE + 1}` });
    expect(multi.status).toBe(206);
    expect(multi.res.headers.get("content-type")).toMatch(/^multipart\/byteranges; boundary=/);
    const text = new TextDecoder("latin1").decode(multi.body);
    expect(text).toContain(`Content-Range: bytes ${9 * SLICE}-${9 * SLICE + 1}/${SIZE}`);
    expect(t.origin.bytesOf("/iso")).toBe(SIZE); // nothing fetched twice
  });

  it("never mixes versions: an answer under way ends, the record goes, the next request gets the new version", async () => {
    const t = setup();
    t.origin.set("/iso", iso());
    await t.get("/iso", { range: "bytes=0-9" }); // record + slice 0 of v1
    t.origin.set("/iso", iso({ seed: 7, headers: { ...iso().headers, etag: '"v2"' } }));
    await expect(t.get("/iso")).rejects.toThrow(); // slice 0 was v1; slice 1 is refused (412): the body fails
    const again = await t.get("/iso");
    expect([again.status, again.xcs]).toEqual([200, "MISS"]);
    expect(again.body).toEqual(pattern(SIZE, 7));
    // Slice 1 was asked for v1 (refused: 412), then the new version was probed from the start.
    expect(t.origin.ranges.get("/iso")!.slice(1, 3)).toEqual([`bytes=${SLICE}-${2 * SLICE - 1}`, `bytes=0-${SLICE - 1}`]);
  });

  it("revalidates a stale record with a one-byte conditional: 304 keeps the slices, a new version replaces them", async () => {
    const t = setup();
    t.origin.set("/iso", iso({ headers: { ...iso().headers, "cache-control": "max-age=10" } }));
    await t.get("/iso");
    t.clock.advance(20);
    const r = await t.get("/iso", { range: "bytes=500000-500009" });
    expect([r.xcs, r.cs]).toEqual(["REVALIDATED", "t1; fwd=stale; fwd-status=304; stored"]);
    expect(r.body).toEqual(bytes(500000, 500009));
    expect(t.origin.lastRequest("/iso")).toMatchObject({ range: "bytes=0-0", "if-none-match": '"v1"' });
    expect(t.origin.bytesOf("/iso")).toBe(SIZE);
    expect((await t.get("/iso", { range: "bytes=0-0" })).xcs).toBe("HIT");
    t.clock.advance(20);
    t.origin.set("/iso", iso({ seed: 3, headers: { ...iso().headers, etag: '"v2"', "cache-control": "max-age=10" } }));
    const n = await t.get("/iso", { range: "bytes=500000-500009" });
    expect([n.xcs, n.cs]).toEqual(["EXPIRED", "t1; fwd=stale; stored"]);
    expect(n.body).toEqual(bytes(500000, 500009, 3));
  });

  it("purging the URL removes the record and every slice", async () => {
    const t = setup();
    t.origin.set("/iso", iso());
    await t.get("/iso");
    expect(t.store.size).toBeGreaterThan(16);
    t.clock.advance(1);
    expect(await t.cache.purge({ urls: ["http://www.example.org/iso"] })).toEqual({ urls: 1, stored: 1 });
    expect(t.store.size).toBe(1); // the purge log
    expect((await t.get("/iso", { range: "bytes=0-0" })).xcs).toBe("MISS");
  });

  it("a prefix purge reaches the slices through their primary key, even where they are still stored", async () => {
    const t = setup();
    t.origin.set("/iso", iso());
    await t.get("/iso", { range: "bytes=0-9" });
    t.clock.advance(1);
    await t.cache.purge({ prefixes: ["http://www.example.org/"] });
    const r = await t.get("/iso", { range: "bytes=0-9" });
    expect(r.xcs).toBe("MISS");
    expect(t.origin.hitsOf("/iso")).toBe(2);
  });

  it("an origin that ignores Range: stored whole when it fits, passed through when larger than max_object_bytes", async () => {
    const t = setup(`max_object_bytes = ${300_000}`);
    t.origin.set("/whole", iso({ ranges: false, size: 250_000 }));
    const a = await t.get("/whole", { range: "bytes=10-19" });
    expect([a.status, a.xcs, a.cs]).toEqual([206, "MISS", "t1; fwd=uri-miss; stored"]);
    expect((await t.get("/whole", { range: "bytes=10-19" })).xcs).toBe("HIT");
    t.origin.set("/huge", iso({ ranges: false }));
    const b = await t.get("/huge", { range: "bytes=10-19" });
    expect([b.status, b.cs]).toEqual([206, "t1; fwd=uri-miss"]);
    expect(b.body).toEqual(bytes(10, 19));
  });

  it("without validators the object is not sliced: the client's own Range goes to the origin", async () => {
    const t = setup();
    t.origin.set("/anon", iso({ headers: { "cache-control": "max-age=60" } }));
    const r = await t.get("/anon", { range: "bytes=300000-300009" });
    expect([r.status, r.cs]).toEqual([206, "t1; fwd=uri-miss"]);
    expect(r.body).toEqual(bytes(300000, 300009));
    expect(t.origin.ranges.get("/anon")).toEqual([`bytes=${4 * SLICE}-${5 * SLICE - 1}`, "bytes=300000-300009"]);
  });

  it("keeps no slice whose body is not the length its Content-Range announced", async () => {
    const t = setup();
    t.origin.set("/short", iso());
    await t.get("/short", { range: "bytes=0-0" });
    // The origin now sends 100 bytes where 64 KiB are announced: the slice is never stored or served.
    t.origin.set("/short", iso({ truncate: 100 }));
    const r = await t.get("/short", { range: `bytes=${3 * SLICE}-${4 * SLICE - 1}` });
    expect([r.status, r.xcs]).toEqual([502, "MISS"]);
    const keys = [...(t.store as unknown as { entries: Map<string, unknown> }).entries.keys()];
    expect(keys.filter((k) => k.endsWith(";3"))).toEqual([]);
  });

  it("a body shorter than its Content-Length is never stored (over HTTP its answer is cut off: test/e2e/mirrors)", async () => {
    const t = setup("slice_threshold_bytes = 0");
    t.origin.set("/cut", { headers: { "cache-control": "max-age=60", "content-length": "5000" }, body: "only this" });
    await t.get("/cut");
    expect(t.store.size).toBe(0);
    expect((await t.get("/cut")).xcs).toBe("MISS");
  });

  it("keeps the slices of Vary variants apart", async () => {
    const t = setup();
    t.origin.set("/v", iso({ headers: { ...iso().headers, vary: "accept-language" } }));
    const en = await t.get("/v", { range: "bytes=10-19", "accept-language": "en" });
    t.origin.set("/v", iso({ seed: 9, headers: { ...iso().headers, etag: '"fr"', vary: "accept-language" } }));
    const fr = await t.get("/v", { range: "bytes=10-19", "accept-language": "fr" });
    expect([en.xcs, fr.xcs, fr.cs]).toEqual(["MISS", "MISS", "t1; fwd=vary-miss; stored"]);
    expect(en.body).toEqual(bytes(10, 19));
    expect(fr.body).toEqual(bytes(10, 19, 9));
    const again = await t.get("/v", { range: "bytes=10-19", "accept-language": "en" });
    expect([again.xcs, again.body]).toEqual(["HIT", bytes(10, 19)]);
    expect((await t.get("/v", { range: "bytes=10-19", "accept-language": "fr" })).body).toEqual(bytes(10, 19, 9));
  });

  it("a HEAD of an unknown large object fetches one slice and answers from the record", async () => {
    const t = setup();
    t.origin.set("/iso", iso());
    const head = await t.get("/iso", {}, "HEAD");
    expect([head.status, head.xcs, head.res.headers.get("content-length"), head.res.headers.get("etag")]).toEqual([200, "MISS", String(SIZE), '"v1"']);
    expect(t.origin.bytesOf("/iso")).toBe(SLICE);
    expect((await t.get("/iso", { range: "bytes=0-9" })).xcs).toBe("HIT");
  });

  it("a large object the rules keep from being stored passes through with the client's own Range", async () => {
    const t = setup(`[[rules]]\npath = "/private/**"\nno_store = { headers = ["x-no-store"] }\n`);
    t.origin.set("/private/iso", iso());
    const r = await t.get("/private/iso", { range: "bytes=500000-500009", "x-no-store": "1" });
    expect([r.status, r.cs]).toEqual([206, "t1; fwd=uri-miss"]);
    expect(r.body).toEqual(bytes(500000, 500009));
    expect(t.origin.ranges.get("/private/iso")!.at(-1)).toBe("bytes=500000-500009");
    expect(t.store.size).toBe(0);
  });

  it("stale-while-revalidate: a stale record answers STALE while one background check refreshes it", async () => {
    const t = setup();
    t.origin.set("/iso", iso({ headers: { ...iso().headers, "cache-control": "max-age=10, stale-while-revalidate=60" } }));
    await t.get("/iso", { range: "bytes=0-9" });
    t.clock.advance(20);
    const stale = await t.get("/iso", { range: "bytes=0-9" });
    expect([stale.xcs, stale.body]).toEqual(["STALE", bytes(0, 9)]);
    expect(t.origin.lastRequest("/iso")).toMatchObject({ range: "bytes=0-0", "if-none-match": '"v1"' });
    expect((await t.get("/iso", { range: "bytes=0-9" })).xcs).toBe("HIT");
  });

  it("slicing off (slice_threshold_bytes = 0) sends no Range and stores whole as before", async () => {
    const t = setup("slice_threshold_bytes = 0");
    t.origin.set("/iso", iso());
    await t.get("/iso", { range: "bytes=700000-700009" });
    expect(t.origin.ranges.get("/iso")).toEqual([""]);
    expect(t.origin.bytesOf("/iso")).toBe(SIZE);
  });
});
