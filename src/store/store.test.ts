/** The disk store's pure parts: file format, protocol parsing, the LRU index, and the start-up recovery scan. */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  TRAILER_LEN, decodeHead, decodeTrailer, encodeHead, encodeTrailer, fileName, findHeadEnd, keyHash,
  lifetimeSeconds, parseFileName, parseHttpHead, singleRange,
} from "./format.ts";
import { StoreIndex, type IndexEntry } from "./lru.ts";
import { scanStore } from "./scan.ts";

const enc = new TextEncoder();

describe("format", () => {
  it("trailer round trip, fixed length, rejects anything else", () => {
    const t = { h: 12, b: 3_000_000_000, e: 1_800_000_000_000, w: 1_700_000_000_000 };
    const bytes = encodeTrailer(t);
    expect(bytes.byteLength).toBe(TRAILER_LEN);
    expect(decodeTrailer(bytes)).toEqual(t);
    const torn = bytes.slice();
    torn[TRAILER_LEN - 2] = 0x41;
    expect(decodeTrailer(torn)).toBeNull();
    expect(decodeTrailer(bytes.subarray(1))).toBeNull();
    expect(decodeTrailer(new Uint8Array(TRAILER_LEN))).toBeNull();
  });

  it("parses workerd's serialized response head, drops framing headers when stored", () => {
    const raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\nX-Parrot-Meta: a%3Ab\r\n\r\nbody";
    const buf = enc.encode(raw);
    const end = findHeadEnd(buf);
    expect(new TextDecoder().decode(buf.subarray(end + 4))).toBe("body");
    const head = parseHttpHead(raw.slice(0, end))!;
    expect(head.status).toBe(200);
    expect(head.statusText).toBe("OK");
    expect(head.headers).toContainEqual(["x-parrot-meta", "a%3Ab"]);
    const stored = decodeHead(encodeHead(head))!;
    expect(stored.headers.map(([n]) => n)).toEqual(["cache-control", "x-parrot-meta"]);
    expect(parseHttpHead("garbage\r\n")).toBeNull();
  });

  it("lifetime: s-maxage > max-age > Expires; no-store, private and no lifetime refuse", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(lifetimeSeconds([["cache-control", "max-age=60, s-maxage=120"]])).toBe(120);
    expect(lifetimeSeconds([["cache-control", "max-age=60"]])).toBe(60);
    expect(lifetimeSeconds([["date", new Date(now).toUTCString()], ["expires", new Date(now + 30_000).toUTCString()]])).toBe(30);
    expect(lifetimeSeconds([["cache-control", "no-store, max-age=60"]])).toBeNull();
    expect(lifetimeSeconds([["cache-control", "private, max-age=60"]])).toBeNull();
    expect(lifetimeSeconds([["cache-control", "max-age=0"]])).toBeNull();
    expect(lifetimeSeconds([])).toBeNull();
  });

  it("single ranges", () => {
    expect(singleRange("bytes=2-5", 10)).toEqual({ start: 2, end: 5 });
    expect(singleRange("bytes=7-", 10)).toEqual({ start: 7, end: 9 });
    expect(singleRange("bytes=-3", 10)).toEqual({ start: 7, end: 9 });
    expect(singleRange("bytes=5-100", 10)).toEqual({ start: 5, end: 9 });
    expect(singleRange("bytes=20-", 10)).toBeNull();
    expect(singleRange("bytes=1-2,4-5", 10)).toBeUndefined();
    expect(singleRange(null, 10)).toBeUndefined();
    expect(singleRange("bytes=5-3", 10)).toBeUndefined(); // invalid: the whole body, as src/cache/range.ts reads it
  });

  it("file names and key hashes (namespaces apart)", async () => {
    const a = await keyHash("", "https://x/a");
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(await keyHash("named", "https://x/a")).not.toBe(a);
    const f = fileName(a, "abc123");
    expect(f).toBe(`${a.slice(0, 2)}/${a}-abc123`);
    expect(parseFileName(f.split("/")[1]!)).toEqual({ hash: a, writeId: "abc123" });
    expect(parseFileName(`.${a}-abc.1.tmp`)).toBeNull();
  });
});

describe("index", () => {
  const entry = (hash: string, size: number, over: Partial<IndexEntry> = {}): IndexEntry => ({
    hash, file: `f/${hash}`, headLen: 0, bodyLen: size - TRAILER_LEN, expires: 1e15, written: 1, lastAccess: 1, ...over,
  });

  it("evicts least recently used first, counting reservations", () => {
    const ix = new StoreIndex();
    for (const h of ["a", "b", "c"]) ix.add(entry(h, 1000));
    ix.touch("a", 5);
    const r = ix.reserve(1000);
    expect(ix.evictToFit(3000).map((e) => e.hash)).toEqual(["b"]);
    r.grow(1000);
    expect(ix.evictToFit(3000).map((e) => e.hash)).toEqual(["c"]);
    r.release();
    expect(ix.reserved).toBe(0);
    expect(ix.total).toBe(1000);
    expect(ix.list().map((e) => e.hash)).toEqual(["a"]);
  });

  it("the newer write of a key wins, whatever order they finish in", () => {
    const ix = new StoreIndex();
    expect(ix.add(entry("k", 500, { file: "new", written: 10 }))).toBeUndefined();
    expect(ix.add(entry("k", 700, { file: "old", written: 5 }))).toBe("old");
    expect(ix.get("k")!.file).toBe("new");
    expect(ix.add(entry("k", 900, { file: "newer", written: 11 }))).toBe("new");
    expect(ix.total).toBe(900);
  });

  it("sweeps inactive and expired entries", () => {
    const ix = new StoreIndex();
    ix.add(entry("idle", 100, { lastAccess: 10 }));
    ix.add(entry("expired", 100, { lastAccess: 100, expires: 50 }));
    ix.add(entry("ok", 100, { lastAccess: 100 }));
    expect(ix.sweep(60, 20).map((e) => e.hash).sort()).toEqual(["expired", "idle"]);
    expect(ix.total).toBe(100);
  });
});

describe("recovery scan", () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const now = Date.now();

  function writeEntry(hash: string, id: string, body: number, over: { e?: number; w?: number; trailer?: boolean } = {}) {
    const head = enc.encode('{"status":200,"statusText":"OK","headers":[]}');
    const parts = [head, new Uint8Array(body)];
    if (over.trailer !== false) parts.push(encodeTrailer({ h: head.byteLength, b: body, e: over.e ?? now + 60_000, w: over.w ?? now - 1000 }));
    mkdirSync(join(dir, hash.slice(0, 2)), { recursive: true });
    writeFileSync(join(dir, fileName(hash, id)), Buffer.concat(parts));
  }

  it("keeps valid entries, removes torn, expired, duplicate and temporary files, enforces the bound", () => {
    dir = mkdtempSync(join(tmpdir(), "parrot-scan-"));
    const h = (c: string) => c.repeat(32);
    writeEntry(h("a"), "1", 100);
    writeEntry(h("b"), "1", 100, { trailer: false }); // torn
    writeEntry(h("c"), "1", 100, { e: now - 1 }); // expired
    writeEntry(h("d"), "1", 100, { w: now - 5000 }); // older write of d
    writeEntry(h("d"), "2", 200, { w: now - 100 });
    writeFileSync(join(dir, h("a").slice(0, 2), `.${h("a")}-9.123.0.tmp`), "partial");
    const r = scanStore(dir, { maxBytes: 1 << 20, inactiveSeconds: 86_400, now });
    expect(r.rows.map((x) => [x[0], x[1].split("-")[1]]).sort()).toEqual([[h("a"), "1"], [h("d"), "2"]]);
    expect(r.removed).toBe(4);
    expect(readdirSync(join(dir, "aa"))).toEqual([`${h("a")}-1`]);
    const small = scanStore(dir, { maxBytes: 400, inactiveSeconds: 86_400, now });
    expect(small.rows).toHaveLength(1);
    expect(small.bytes).toBeLessThanOrEqual(400);
  });
});
