/** The hot tier over a MemoryStore, on a fake clock: what it keeps, for how long, and that it never outlives the store. */
import { describe, expect, it } from "vitest";
import type { EntryMeta, StoredMeta } from "../cache/entry.ts";
import { parseConfig } from "../config/config.ts";
import { pattern, ScriptedOrigin } from "../../test/support/scripted-origin.ts";
import { EdgeCache } from "./engine.ts";
import { HotTier } from "./hot-tier.ts";
import { originFetcher } from "./origin.ts";
import { MemoryStore, type EntryStore } from "./store.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");

function meta(key: string, size: number, over: Partial<EntryMeta> = {}): EntryMeta {
  return {
    kind: "entry", key, status: 200, statusText: "OK", headers: [["content-length", String(size)]],
    requestTime: T0, responseTime: T0, initialAge: 0, lifetime: 60, staleWhileRevalidate: 0, staleIfError: 0,
    noCache: false, mustRevalidate: false, tags: [], size, ...over,
  };
}

/** Counts reads that reach the store below. */
class Counting implements EntryStore {
  gets = 0;
  readonly inner: MemoryStore;
  constructor(inner: MemoryStore) {
    this.inner = inner;
  }
  get(key: string) {
    this.gets++;
    return this.inner.get(key);
  }
  put(key: string, m: StoredMeta, body: ReadableStream<Uint8Array> | null, ttl: number) {
    return this.inner.put(key, m, body, ttl);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
}

function setup(maxBytes = 10_000, maxObjectBytes = 2_000) {
  let now = T0;
  const clock = { now: () => now, advance: (s: number) => void (now += s * 1000) };
  const below = new Counting(new MemoryStore(clock.now));
  const hot = new HotTier(below, { maxBytes, maxObjectBytes, now: clock.now });
  return { clock, below, hot };
}

const body = (n: number) => new Response(pattern(n)).body;
const text = async (e: { body: ReadableStream<Uint8Array> | null } | null) => (e?.body ? new Uint8Array(await new Response(e.body).arrayBuffer()) : null);

describe("hot tier", () => {
  it("serves a small entry from memory after the put, the same bytes and meta", async () => {
    const { hot, below } = setup();
    await hot.put("a", meta("a", 1000), body(1000), 60);
    const e = await hot.get("a");
    expect(await text(e)).toEqual(pattern(1000));
    expect(e!.meta).toEqual(meta("a", 1000));
    expect(below.gets).toBe(0);
    // The store below has it too.
    expect(await text(await below.inner.get("a"))).toEqual(pattern(1000));
  });

  it("never outlives the physical lifetime the store below was given", async () => {
    const { hot, below, clock } = setup();
    await hot.put("a", meta("a", 10), body(10), 30);
    clock.advance(29);
    expect(await hot.get("a")).not.toBeNull();
    expect(below.gets).toBe(0);
    clock.advance(2);
    expect(await hot.get("a")).toBeNull();
    expect(below.gets).toBe(1);
  });

  it("a delete (purge) evicts the copy and reaches the store below", async () => {
    const { hot, below } = setup();
    await hot.put("a", meta("a", 10), body(10), 60);
    await hot.delete("a");
    expect(hot.has("a")).toBe(false);
    expect(await hot.get("a")).toBeNull();
    expect(await below.inner.get("a")).toBeNull();
  });

  it("a put replaces the copy: the new meta and bytes are served", async () => {
    const { hot } = setup();
    await hot.put("a", meta("a", 10), body(10), 60);
    await hot.put("a", meta("a", 20, { etag: '"v2"' }), body(20), 60);
    const e = await hot.get("a");
    expect((e!.meta as EntryMeta).etag).toBe('"v2"');
    expect((await text(e))!.byteLength).toBe(20);
  });

  it("keeps objects larger than the per-object bound only in the store below", async () => {
    const { hot, below } = setup(10_000, 2_000);
    await hot.put("big", meta("big", 5_000), body(5_000), 60);
    expect(hot.has("big")).toBe(false);
    expect(await text(await hot.get("big"))).toEqual(pattern(5_000));
    expect(below.gets).toBe(1);
    // Unknown size: collected up to the bound, then left alone.
    await hot.put("unk", meta("unk", 0, { size: undefined }), body(3_000), 60);
    expect(hot.has("unk")).toBe(false);
  });

  it("fills from a read of the store below, then serves from memory", async () => {
    const { hot, below } = setup();
    await below.inner.put("a", meta("a", 100), body(100), 60);
    expect(await text(await hot.get("a"))).toEqual(pattern(100));
    expect(await text(await hot.get("a"))).toEqual(pattern(100));
    expect(below.gets).toBe(1);
  });

  it("a fill never outlives the entry's freshness and stale windows", async () => {
    const { hot, below, clock } = setup();
    await below.inner.put("a", meta("a", 10, { lifetime: 5 }), body(10), 3600);
    await hot.get("a");
    clock.advance(6);
    await hot.get("a");
    expect(below.gets).toBe(2);
  });

  it("evicts the least recently used when the byte bound is reached", async () => {
    const { hot } = setup(8_000, 2_000);
    for (const k of ["a", "b", "c"]) await hot.put(k, meta(k, 1_200), body(1_200), 60);
    await hot.get("a"); // a is now the most recent
    await hot.put("d", meta("d", 1_200), body(1_200), 60);
    expect([hot.has("a"), hot.has("b"), hot.has("c"), hot.has("d")]).toEqual([true, false, true, true]);
    expect(hot.totalBytes).toBeLessThanOrEqual(8_000);
  });

  it("a fill that started before a delete of its key, or before the generation table was emptied, is not held", async () => {
    const { hot, below } = setup();
    await below.inner.put("k", meta("k", 100), body(100), 60);
    // A slow read from below: the fill's generation is taken before it, compared after it.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slowGet = below.get.bind(below);
    below.get = async (key: string) => (await gate, slowGet(key));
    const racing = hot.get("k");
    await hot.delete("other"); // another key: the fill of k still lands
    release();
    await racing;
    expect(hot.has("k")).toBe(true);

    hot.forget("k");
    let release2!: () => void;
    const gate2 = new Promise<void>((r) => (release2 = r));
    below.get = async (key: string) => (await gate2, slowGet(key));
    await below.inner.put("k", meta("k", 100), body(100), 60);
    const racing2 = hot.get("k");
    // Keys are URLs a client chooses: long ones fill the table's byte bound (8 MiB) and empty it.
    for (let i = 0; i < 3; i++) await hot.delete(`/${i}/${"x".repeat(2 * 1024 * 1024)}`);
    release2();
    await racing2;
    expect(hot.has("k")).toBe(false);
  });

  it("keeps Vary markers (no body) too", async () => {
    const { hot, below } = setup();
    await hot.put("v", { kind: "vary", key: "v", fields: ["accept"], id: "x1" }, null, 60);
    expect((await hot.get("v"))!.meta.kind).toBe("vary");
    expect(below.gets).toBe(0);
  });
});

describe("hot tier under the engine (fake clock)", () => {
  function engine() {
    let now = T0;
    const clock = { now: () => now, advance: (s: number) => void (now += s * 1000) };
    const origin = new ScriptedOrigin(clock.now);
    const config = parseConfig(`[edge]\nname = "t1"\norigin = "http://origin.test"\n`);
    const below = new Counting(new MemoryStore(clock.now));
    const hot = new HotTier(below, { maxBytes: 1 << 20, maxObjectBytes: 1 << 16, now: clock.now });
    const pending: Promise<unknown>[] = [];
    const cache = new EdgeCache({
      edge: config.edge!, rules: config.rules, store: hot, now: clock.now,
      origin: originFetcher(config.edge!, async (i: Request | string, init?: RequestInit) => origin.handle(new Request(i, init))),
    });
    const ctx = { waitUntil: (p: Promise<unknown>) => void pending.push(p) };
    const get = async (path: string, init: RequestInit = {}) => {
      const res = await cache.handle(new Request(`http://www.example.org${path}`, init), ctx);
      const b = await res.text();
      while (pending.length) await Promise.allSettled(pending.splice(0));
      return { xcs: res.headers.get("x-cache-status"), body: b };
    };
    return { clock, origin, below, get };
  }

  it("freshness is still the engine's: a stale copy in memory is EXPIRED, not HIT", async () => {
    const t = engine();
    t.origin.set("/a", { headers: { "cache-control": "max-age=10", etag: '"1"' }, body: "one" });
    expect((await t.get("/a")).xcs).toBe("MISS");
    expect((await t.get("/a")).xcs).toBe("HIT");
    t.clock.advance(11);
    t.origin.set("/a", { headers: { "cache-control": "max-age=10", etag: '"2"' }, body: "two" });
    expect(await t.get("/a")).toEqual({ xcs: "EXPIRED", body: "two" });
    expect(await t.get("/a")).toEqual({ xcs: "HIT", body: "two" });
    // the purge log's first read and the first lookup (nothing stored); the lock taken after it needs no second look
    expect(t.below.gets).toBe(2);
  });

  it("a purge by POST reaches the hot tier", async () => {
    const t = engine();
    t.origin.set("/p", { headers: { "cache-control": "max-age=60" }, body: "x" });
    await t.get("/p");
    expect((await t.get("/p")).xcs).toBe("HIT");
    await t.get("/p", { method: "POST", body: "y" });
    expect((await t.get("/p")).xcs).toBe("MISS");
  });

  it("keeps Vary variants apart", async () => {
    const t = engine();
    t.origin.set("/v", { headers: { "cache-control": "max-age=60", vary: "accept-language" }, body: "v" });
    const en = { headers: { "accept-language": "en" } };
    const fr = { headers: { "accept-language": "fr" } };
    expect((await t.get("/v", en)).xcs).toBe("MISS");
    expect((await t.get("/v", fr)).xcs).toBe("MISS");
    expect((await t.get("/v", en)).xcs).toBe("HIT");
    expect((await t.get("/v", fr)).xcs).toBe("HIT");
  });
});

describe("hot tier and shared records", () => {
  it("never holds the purge log (or any record that is not a response or a Vary marker)", async () => {
    const { hot, below } = setup(10_000, 100);
    const key = "\u0001purge-log";
    const log = new Response(JSON.stringify({ urls: { a: { at: 1, soft: false } }, pad: "x".repeat(500) })).body;
    await hot.put(key, { kind: "purge-log", key } as unknown as StoredMeta, log, 60);
    expect(hot.has(key)).toBe(false);
    const read = await hot.get(key);
    expect((await text(read))!.byteLength).toBeGreaterThan(500); // larger than the per-object bound, still whole
    expect(below.gets).toBe(1);
  });
});

describe("hot tier meta", () => {
  it("hands out a frozen meta: a change throws instead of corrupting what later hits see", async () => {
    const { hot } = setup();
    await hot.put("a", meta("a", 10), body(10), 60);
    const e = await hot.get("a");
    expect(() => {
      (e!.meta as EntryMeta).lifetime = 1;
    }).toThrow(TypeError);
    expect(((await hot.get("a"))!.meta as EntryMeta).lifetime).toBe(60);
  });
});

describe("hot tiers of several processes over one store", () => {
  /** Two processes' tiers over one store; the store's ring of changed keys, read by `confirm`. */
  function box() {
    let now = T0;
    const shared = new MemoryStore(() => now);
    const ring: string[] = [];
    const changed = (tier: HotTier) => {
      let seen = 0;
      return async () => {
        for (; seen < ring.length; seen++) tier.forget(ring[seen]!);
      };
    };
    // The store announces every key a put replaced or a delete removed (src/store/worker.ts).
    const announcing: EntryStore = {
      get: (k) => shared.get(k),
      put: async (k, m, b, ttl) => {
        const had = await shared.get(k);
        await had?.body?.cancel();
        await shared.put(k, m, b, ttl);
        if (had) ring.push(k);
      },
      delete: async (k) => {
        const gone = await shared.delete(k);
        if (gone) ring.push(k);
        return gone;
      },
    };
    const a = new HotTier(announcing, { maxBytes: 10_000, maxObjectBytes: 2_000, now: () => now });
    const b = new HotTier(announcing, { maxBytes: 10_000, maxObjectBytes: 2_000, now: () => now });
    a.confirm = changed(a);
    b.confirm = changed(b);
    return { a, b };
  }

  it("a copy another process replaced (a 304's merged headers) is not served once that process stored it", async () => {
    const { a, b } = box();
    await a.put("k", meta("k", 10, { headers: [["content-length", "10"], ["x-v", "1"]] }), body(10), 60);
    expect(((await b.get("k"))!.meta as EntryMeta).headers).toContainEqual(["x-v", "1"]); // both hold it now
    await b.put("k", meta("k", 10, { headers: [["content-length", "10"], ["x-v", "2"]] }), body(10), 60);
    expect(((await a.get("k"))!.meta as EntryMeta).headers).toContainEqual(["x-v", "2"]);
  });

  it("a copy another process deleted (an unsafe method, its Location) is not served after the delete", async () => {
    const { a, b } = box();
    await a.put("k", meta("k", 10), body(10), 60);
    await b.delete("k");
    expect(await a.get("k")).toBeNull();
    expect(await a.getRange("k", 0, 1)).toBeNull();
  });

  it("serves its copy when the store cannot be asked", async () => {
    const { a } = box();
    await a.put("k", meta("k", 10), body(10), 60);
    a.confirm = () => Promise.reject(new Error("store away"));
    expect(await text(await a.get("k"))).toEqual(pattern(10));
  });
});

describe("hot tier: places on disk (the store's checked bodies read from their files)", () => {
  /** The store below answers with where the body is on disk; the fake disk service serves those files. */
  function placed(maxBytes = 0) {
    let now = T0;
    const clock = { now: () => now, advance: (s: number) => void (now += s * 1000) };
    const files = new Map<string, Uint8Array>();
    const diskReads: string[] = [];
    const disk = {
      async fetch(input: RequestInfo | URL, init?: RequestInit) {
        const file = new URL(String(input)).pathname.slice(1);
        diskReads.push(file);
        const bytes = files.get(file);
        const m = /^bytes=(\d+)-(\d+)$/.exec(new Headers(init?.headers).get("range") ?? "");
        if (!bytes || !m) return new Response(null, { status: 404 });
        const part = bytes.slice(Number(m[1]), Number(m[2]) + 1);
        return new Response(part, { status: 206, headers: { "content-length": String(part.byteLength) } });
      },
    } as unknown as Fetcher;
    const below = new Counting(new MemoryStore(clock.now));
    const stored = below.get.bind(below);
    let file = "ab/" + "ab".repeat(16) + "-1";
    below.get = async (key: string) => {
      const e = await stored(key);
      if (!e || e.meta.kind !== "entry") return e;
      // A file: a 10-byte head, then the body (what the store's files look like to a reader of a range).
      const bytes = new Uint8Array(await new Response(e.body).arrayBuffer());
      const f = new Uint8Array(10 + bytes.byteLength);
      f.set(bytes, 10);
      files.set(file, f);
      return { meta: e.meta, body: new Response(bytes).body, disk: { file, offset: 10, length: bytes.byteLength, until: now + 1000 } };
    };
    const hot = new HotTier(below, { maxBytes, maxObjectBytes: 0, now: clock.now, disk });
    return { clock, below, hot, files, diskReads, newFile: (name: string) => (file = name) };
  }

  it("reads a body from its file after the store said where it is, without asking the store, until the store's time", async () => {
    const { hot, below, diskReads, clock } = placed();
    await hot.put("a", meta("a", 5000), body(5000), 60);
    expect(await text(await hot.get("a"))).toEqual(pattern(5000)); // from the store, with its place
    expect(below.gets).toBe(1);
    const e = await hot.get("a");
    expect(await text(e)).toEqual(pattern(5000));
    expect(e!.meta).toEqual(meta("a", 5000));
    expect(below.gets).toBe(1);
    expect(diskReads).toHaveLength(1);
    expect(hot.diskHits).toBe(1);
    clock.advance(1); // the store's `until` passed: ask it again
    await text(await hot.get("a"));
    expect(below.gets).toBe(2);
  });

  it("gives a place up when its file is gone (evicted, replaced by another process) and asks the store", async () => {
    const { hot, below, files, newFile } = placed();
    await hot.put("a", meta("a", 100), body(100), 60);
    await text(await hot.get("a"));
    files.clear();
    newFile("cd/" + "cd".repeat(16) + "-2");
    expect(await text(await hot.get("a"))).toEqual(pattern(100));
    expect(below.gets).toBe(2);
    expect(await text(await hot.get("a"))).toEqual(pattern(100)); // the new place
    expect(below.gets).toBe(2);
  });

  it("a put, a delete or another process's change drops the place", async () => {
    const { hot, below } = placed();
    await hot.put("a", meta("a", 100), body(100), 60);
    await text(await hot.get("a"));
    await hot.put("a", meta("a", 200), body(200), 60);
    expect(await text(await hot.get("a"))).toEqual(pattern(200));
    expect(below.gets).toBe(2);
    await hot.delete("a");
    expect(await hot.get("a")).toBeNull();
    await hot.put("b", meta("b", 100), body(100), 60);
    await text(await hot.get("b"));
    hot.forget("b");
    await text(await hot.get("b"));
    expect(below.gets).toBe(5);
    hot.clear();
    await text(await hot.get("b"));
    expect(below.gets).toBe(6);
  });

  it("a place read before a delete of its key is not kept", async () => {
    const { hot, below } = placed();
    await hot.put("a", meta("a", 100), body(100), 60);
    const reading = hot.get("a");
    await hot.delete("a"); // while the store was being asked
    await text(await reading);
    expect(await hot.get("a")).toBeNull();
    expect(below.gets).toBe(2);
  });

  it("a copy in memory wins over a place; without a disk binding nothing is placed", async () => {
    const { hot, below, diskReads } = placed(10_000);
    (hot as unknown as { maxObjectBytes: number }).maxObjectBytes = 2000;
    await hot.put("a", meta("a", 100), body(100), 60);
    await text(await hot.get("a"));
    expect(diskReads).toHaveLength(0);
    expect(below.gets).toBe(0);
    const plain = new HotTier(new MemoryStore(), { maxBytes: 0, maxObjectBytes: 0 });
    await plain.put("a", meta("a", 100, { responseTime: Date.now(), requestTime: Date.now() }), body(100), 60);
    expect(await text(await plain.get("a"))).toEqual(pattern(100));
    expect(plain.diskHits).toBe(0);
  });
});
