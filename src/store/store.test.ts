/** The disk store's pure parts: file format, its HIT answers, protocol parsing, the LRU index, and the start-up recovery scan. */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  TRAILER_LEN, decodeHead, decodeTrailer, encodeHead, encodeTrailer, fileLength, fileName, findHeadEnd, keyHash,
  lifetimeSeconds, parseFileName, parseHttpHead, singleRange,
} from "./format.ts";
import { BLOCK, BlockChecks, BlockHasher, bodyMatches, digestTable, headDigest, tableLen, verifiedBody } from "./integrity.ts";
import { hitResponse } from "./answer.ts";
import { HeadCache } from "./heads.ts";
import { Slots } from "./slots.ts";
import { StoreIndex, type IndexEntry } from "./lru.ts";
import { scanStore } from "./scan.ts";

const enc = new TextEncoder();

describe("format", () => {
  it("trailer round trip, fixed length, rejects anything else", () => {
    const t = { h: 12, b: 3_000_000_000, e: 1_800_000_000_000, w: 1_700_000_000_000, hh: "0123456789abcdef" };
    const bytes = encodeTrailer(t);
    expect(bytes.byteLength).toBe(TRAILER_LEN);
    expect(decodeTrailer(bytes)).toEqual(t);
    const torn = bytes.slice();
    torn[TRAILER_LEN - 2] = 0x41;
    expect(decodeTrailer(torn)).toBeNull();
    expect(decodeTrailer(bytes.subarray(1))).toBeNull();
    expect(decodeTrailer(new Uint8Array(TRAILER_LEN))).toBeNull();
    expect(decodeTrailer(encodeTrailer({ ...t, hh: "not a digest" }))).toBeNull();
    expect(fileLength(12, 3 * BLOCK + 1)).toBe(12 + 3 * BLOCK + 1 + 4 * 16 + TRAILER_LEN);
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
    // A file of `size` bytes: one digest (16 bytes) and the trailer around the body.
    hash, file: `f/${hash}`, headLen: 0, bodyLen: size - TRAILER_LEN - 16, expires: 1e15, written: 1, lastAccess: 1, headHash: "0", ...over,
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

  it("evicts least recently used entries beyond an entry bound, whatever their bytes", () => {
    const ix = new StoreIndex();
    for (const h of ["a", "b", "c", "d"]) ix.add(entry(h, 100));
    ix.touch("a", 5);
    expect(ix.evictToFit(1e9, 2).map((e) => e.hash)).toEqual(["b", "c"]);
    expect(ix.list().map((e) => e.hash)).toEqual(["d", "a"]);
    expect(ix.evictToFit(1e9, 2)).toEqual([]);
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
    ix.add(entry("idle", 1000, { lastAccess: 10 }));
    ix.add(entry("expired", 1000, { lastAccess: 100, expires: 50 }));
    ix.add(entry("ok", 1000, { lastAccess: 100 }));
    expect(ix.sweep(60, 20).map((e) => e.hash).sort()).toEqual(["expired", "idle"]);
    expect(ix.total).toBe(1000);
  });
});

describe("recovery scan", () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const now = Date.now();

  async function writeEntry(hash: string, id: string, body: number, over: { e?: number; w?: number; trailer?: boolean; flipHead?: boolean } = {}) {
    const head = enc.encode('{"status":200,"statusText":"OK","headers":[]}');
    const bodyBytes = new Uint8Array(body);
    const hasher = new BlockHasher();
    hasher.update(bodyBytes);
    const parts = [head.slice(), bodyBytes, await hasher.table()];
    if (over.trailer !== false) {
      parts.push(encodeTrailer({ h: head.byteLength, b: body, e: over.e ?? now + 60_000, w: over.w ?? now - 1000, hh: await headDigest(head) }));
    }
    if (over.flipHead) parts[0]![5] ^= 0x04;
    mkdirSync(join(dir, hash.slice(0, 2)), { recursive: true });
    writeFileSync(join(dir, fileName(hash, id)), Buffer.concat(parts));
  }

  it("keeps valid entries, removes torn, expired, duplicate, damaged-head and temporary files, enforces the bound", async () => {
    dir = mkdtempSync(join(tmpdir(), "parrot-scan-"));
    const h = (c: string) => c.repeat(32);
    await writeEntry(h("a"), "1", 100);
    await writeEntry(h("b"), "1", 100, { trailer: false }); // torn
    await writeEntry(h("c"), "1", 100, { e: now - 1 }); // expired
    await writeEntry(h("d"), "1", 100, { w: now - 5000 }); // older write of d
    await writeEntry(h("d"), "2", 200, { w: now - 100 });
    await writeEntry(h("e"), "1", 100, { flipHead: true }); // one flipped bit in the head
    writeFileSync(join(dir, h("a").slice(0, 2), `.${h("a")}-9.123.0.tmp`), "partial");
    const r = await scanStore(dir, { maxBytes: 1 << 20, inactiveSeconds: 86_400, now });
    expect(r.rows.map((x) => [x[0], x[1].split("-")[1]]).sort()).toEqual([[h("a"), "1"], [h("d"), "2"]]);
    expect(r.removed).toBe(5);
    expect(readdirSync(join(dir, "aa"))).toEqual([`${h("a")}-1`]);
    const small = await scanStore(dir, { maxBytes: 500, inactiveSeconds: 86_400, now });
    expect(small.rows).toHaveLength(1);
    expect(small.bytes).toBeLessThanOrEqual(500);
    // The entry bound at recovery: the least recently used go.
    await writeEntry(h("f"), "1", 10);
    await writeEntry(h("0"), "1", 10);
    const few = await scanStore(dir, { maxBytes: 1 << 20, maxEntries: 2, inactiveSeconds: 86_400, now });
    expect(few.rows).toHaveLength(2);
  });
});

describe("integrity", () => {
  const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + (i >> 11)) & 0xff);
  // A byte stream, as the disk service's bodies are.
  const chunks = (bytes: Uint8Array, size: number) =>
    new ReadableStream({
      type: "bytes",
      start(c) {
        for (let i = 0; i < bytes.byteLength; i += size) c.enqueue(bytes.slice(i, i + size));
        c.close();
      },
    }) as ReadableStream<Uint8Array>;
  const read = async (s: ReadableStream<Uint8Array>) => new Uint8Array(await new Response(s).arrayBuffer());

  it("one digest per block, the same however the body is chunked", async () => {
    const body = pattern(2 * BLOCK + 12345);
    const one = new BlockHasher();
    one.update(body);
    const many = new BlockHasher();
    for (let i = 0; i < body.byteLength; i += 65_537) many.update(body.subarray(i, i + 65_537));
    const table = await one.table();
    expect(table.byteLength).toBe(tableLen(body.byteLength));
    expect(await many.table()).toEqual(table);
    expect(await bodyMatches(body, table)).toBe(true);
    const flipped = body.slice();
    flipped[BLOCK + 5] ^= 1;
    expect(await bodyMatches(flipped, table)).toBe(false);
    // A body held whole (a small entry written in one piece) gets the same table, block by block where it lies.
    expect(await digestTable(body)).toEqual(table);
    for (const n of [0, 1, 1000, BLOCK, BLOCK + 1]) {
      const h = new BlockHasher();
      h.update(pattern(n));
      expect(await digestTable(pattern(n))).toEqual(await h.table());
    }
  });

  it("passes a range on only from blocks that matched; a damaged block ends the stream and is reported", { timeout: 20_000 }, async () => {
    const body = pattern(3 * BLOCK + 100);
    const h = new BlockHasher();
    h.update(body);
    const table = await h.table();
    const from = BLOCK + 10;
    const to = 3 * BLOCK + 50;
    let corrupt = 0;
    const ok = verifiedBody(chunks(body.subarray(BLOCK), 70_001), { bodyLen: body.byteLength, firstBlock: 1, table, from, to, onCorrupt: () => corrupt++ });
    expect(await read(ok)).toEqual(body.subarray(from, to + 1));
    expect(corrupt).toBe(0);
    const bad = body.slice();
    bad[2 * BLOCK + 3] ^= 0x10;
    const cut = verifiedBody(chunks(bad.subarray(BLOCK), 70_001), { bodyLen: body.byteLength, firstBlock: 1, table, from, to, onCorrupt: () => corrupt++ });
    const got: Uint8Array[] = [];
    const reader = cut.getReader();
    await expect((async () => {
      for (;;) {
        const r = await reader.read();
        if (r.done) break;
        got.push(r.value);
      }
    })()).rejects.toThrow(/does not match/);
    expect(corrupt).toBe(1);
    // Only the first (good) block's part was passed on: never a byte of the damaged block.
    expect(got.reduce((n, c) => n + c.byteLength, 0)).toBe(2 * BLOCK - from);
  });
  it("reads blocks under a bound, and passes on a copy of a small range, not the block it came from", async () => {
    const body = pattern(2 * BLOCK);
    const h = new BlockHasher();
    h.update(body);
    const table = await h.table();
    const slots = new Slots(1);
    const held = await slots.acquire(); // another read holds the only slot
    const a = verifiedBody(chunks(body, 70_001), { bodyLen: body.byteLength, firstBlock: 0, table, from: 10, to: 1_009, onCorrupt: () => undefined, slots });
    const b = verifiedBody(chunks(body.subarray(BLOCK), 70_001), { bodyLen: body.byteLength, firstBlock: 1, table, from: BLOCK + 5, to: BLOCK + 5, onCorrupt: () => undefined, slots });
    const readerB = b.getReader();
    const pendingB = readerB.read();
    const pendingA = a.getReader().read();
    await new Promise((r) => setTimeout(r, 0));
    expect(slots.queued).toBe(2); // both wait while the slot is held; nothing is read yet
    held();
    const chunk = (await pendingA).value!;
    expect(chunk).toEqual(body.subarray(10, 1_010));
    expect(chunk.buffer.byteLength).toBe(1_000); // the 1 MiB block is not kept alive by the answer
    expect((await pendingB).value).toEqual(body.subarray(BLOCK + 5, BLOCK + 6));
    expect(slots.busy).toBe(0);
  });

  it("knows which blocks matched and when: a check stands for the recheck period, a block matched is marked", async () => {
    const checks = new BlockChecks(3 * BLOCK + 1); // 4 blocks
    const t0 = 1_000_000;
    expect(checks.covers(0, 0, t0, 600_000)).toBe(false);
    checks.mark(1, t0);
    checks.mark(2, t0);
    expect(checks.covers(1, 2, t0 + 599_999, 600_000)).toBe(true);
    expect(checks.covers(1, 3, t0, 600_000)).toBe(false); // block 3 never matched
    expect(checks.covers(1, 2, t0 + 600_000, 600_000)).toBe(false); // the period passed: checked again
    expect(checks.covers(1, 1, t0, 0)).toBe(false); // 0: every read is checked

    // verifiedBody marks each block once its digest matched, and not the damaged one.
    const body = pattern(3 * BLOCK);
    const h = new BlockHasher();
    h.update(body);
    const table = await h.table();
    const damaged = body.slice();
    damaged[2 * BLOCK + 9] ^= 1;
    const matched: number[] = [];
    let bytesRead = 0;
    const stream = verifiedBody(chunks(damaged, 65_536), {
      bodyLen: body.byteLength, firstBlock: 0, table, from: 0, to: body.byteLength - 1, onCorrupt: () => undefined,
      onChecked: (b) => matched.push(b), onRead: (n) => (bytesRead += n),
    });
    await expect(read(stream)).rejects.toThrow(/does not match/);
    expect(matched).toEqual([0, 1]);
    expect(bytesRead).toBe(3 * BLOCK);
  });
});

describe("head cache", () => {
  const head = (n: number) => ({ status: 200, statusText: "OK", headers: [["x", String(n)]] as [string, string][] });
  it("keeps heads within its byte bound, least recently used out first", () => {
    const heads = new HeadCache(1000);
    heads.set("a", head(1), 400);
    heads.set("b", head(2), 400);
    expect(heads.get("a")).toEqual(head(1)); // a is now the most recently used
    heads.set("c", head(3), 400);
    expect([heads.get("a"), heads.get("b"), heads.get("c")]).toEqual([head(1), undefined, head(3)]);
    expect(heads.bytes).toBe(800);
    heads.set("d", head(4), 2000); // larger than the bound: not kept, nothing else dropped
    expect([heads.get("d"), heads.bytes]).toEqual([undefined, 800]);
    heads.delete("a");
    expect([heads.get("a"), heads.bytes]).toEqual([undefined, 400]);
  });
});

describe("answers", () => {
  it("never carry a stored head's own x-parrot-disk: only the store says where a body lies (whole, Range, HEAD; one value per name or repeated ones)", async () => {
    const forged = "ab/0123456789abcdef0123456789abcdef-x1 0 5 99999999999999";
    const single = { status: 200, statusText: "OK", headers: [["cache-control", "max-age=60"], ["x-parrot-disk", forged]] as [string, string][] };
    const repeated = { ...single, headers: [...single.headers, ["set-cookie", "a=1"], ["set-cookie", "b=2"]] as [string, string][] };
    for (const head of [single, repeated]) {
      const whole = hitResponse(head, new TextEncoder().encode("hello"), 5);
      expect([whole.status, whole.headers.get("x-parrot-disk"), whole.headers.get("cache-control"), await whole.text()]).toEqual([200, null, "max-age=60", "hello"]);
      const part = hitResponse(head, new TextEncoder().encode("ell"), 5, { start: 1, end: 3 });
      expect([part.status, part.headers.get("content-range"), part.headers.get("x-parrot-disk")]).toEqual([206, "bytes 1-3/5", null]);
      const bare = hitResponse(head, null, 5);
      expect([bare.headers.get("content-length"), bare.headers.get("x-parrot-disk")]).toEqual(["5", null]);
    }
    expect(hitResponse(repeated, null, 5).headers.getSetCookie()).toEqual(["a=1", "b=2"]);
  });
});
