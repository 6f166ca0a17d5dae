/**
 * The cache store service for bare workerd: the edge worker's `cacheApiOutbound`. It speaks workerd's cache protocol
 *   GET  (Cache-Control: only-if-cached)  → the stored response + `cf-cache-status: HIT`, or 504 + `MISS`
 *   PUT  (body: the serialized HTTP/1.1 response)  → 204 stored, 413 refused
 *   PURGE → 200 deleted, 404 not found;  `cf-cache-namespace` names a `caches.open()` cache
 * and keeps entries as files through workerd's `disk` service (binding DISK, see format.ts for the layout).
 * The index lives in this isolate: loaded from the STORE_INDEX binding that the host builds from the directory at
 * start (scan.ts), kept in memory, its use order saved to `lru.json` now and then.
 * Bodies stream both ways; a single Range is answered from the file.
 *
 * POST (never part of the cache protocol) carries the edge's own calls through its STORE service binding: the
 * coalescing locks of the box's edge processes and the stats (src/contracts/store.ts).
 */
import {
  decodeHead,
  encodeHead,
  encodeTrailer,
  fileLength,
  fileName,
  findHeadEnd,
  keyHash,
  lifetimeSeconds,
  parseHttpHead,
  singleRange,
  type StoredHead,
} from "./format.ts";
import { BLOCK, BlockChecks, BlockHasher, bodyMatches, digestTable, headDigest, readBlock, tableLen, verifiedBody } from "./integrity.ts";
import { hitResponse } from "./answer.ts";
import { HeadCache } from "./heads.ts";
import { StoreIndex, type IndexEntry } from "./lru.ts";
import { Slots } from "./slots.ts";
import {
  CHANGED_HEADER,
  DISK_REF_HEADER,
  formatDiskRef,
  LOCK_HEADER,
  LOCK_TOKEN_HEADER,
  INVALIDATED_PATH,
  INVALIDATE_PATH,
  LOG_SEQ_HEADER,
  PURGE_LOG_KEY,
  LOCKED_PATH,
  LOCK_PATH,
  STATS_PATH,
  RENEW_PATH,
  UNLOCK_PATH,
  type IndexRow,
  type Invalidations,
  type ReadStats,
  type StoreSettings,
  type StoreStats,
} from "../contracts/store.ts";

export interface StoreEnv {
  DISK: Fetcher;
  STORE: StoreSettings;
  STORE_INDEX?: IndexRow[];
}

const MAX_HEAD = 256 * 1024;
/** Entries up to this size (head + body) are read in one piece. */
const SMALL = 256 * 1024;
/**
 * Block reads under way at once in this store (each holds one block, 1 MiB, while it is read and its digest checked):
 * a burst of Ranges waits its turn instead of holding a block each. Enough to keep a core hashing.
 */
const BLOCK_READS = 8;
const blockReads = new Slots(BLOCK_READS);
/** Decoded heads kept in memory (their encoded bytes): a HIT of a known head reads nothing but its body. */
const HEAD_CACHE_BYTES = 8 * 1024 * 1024;
const DISK = "http://disk/";
/** At most this long (ms) an edge reads a body from its file itself before it asks the store again (DISK_REF_HEADER). */
const DISK_REF_MS = 1000;

interface State {
  index: StoreIndex;
  settings: StoreSettings;
  lastSweep: number;
  lastSave: number;
  dirty: boolean;
  writes: number;
  /** Recent purges (key hash → time): a write that started before the purge of its key is dropped when it ends. */
  purged: Map<string, number>;
  /** Entries removed to stay within the bound, unused for store_inactive, or expired. */
  evicted: { lru: number; inactive: number; expired: number };
  /** Entries dropped because a digest did not match. */
  corrupt: number;
  /** How bodies were read for answers (see StoreStats.reads). */
  reads: ReadStats;
  heads: HeadCache;
  /** Stores of the purge log made visible so far (LOG_SEQ_HEADER, with the ring's id as this process's). */
  logSeq: number;
  /** Coalescing locks: cache URL hash → holder's token and expiry (ms); a PUT of the URL releases its lock. */
  locks: Map<string, { token: string; expires: number }>;
  /** Client invalidations for the edge processes' memory tiers: the newest, oldest first, bounded (see /invalidate). */
  invalidations: { id: string; seq: number; ring: { seq: number; key: string }[]; bytes: number };
  /** Calls answered, by kind (StoreStats.calls): what a request costs the store, in round trips. */
  calls: Record<string, number>;
}

let state: State | undefined;

function stateFor(env: StoreEnv): State {
  if (state) return state;
  const index = new StoreIndex();
  for (const [hash, file, headLen, bodyLen, expires, written, lastAccess, headHash] of env.STORE_INDEX ?? []) {
    index.add({ hash, file, headLen, bodyLen, expires, written, lastAccess, headHash });
  }
  state = {
    index,
    settings: env.STORE,
    lastSweep: Date.now(),
    lastSave: Date.now(),
    dirty: false,
    writes: 0,
    purged: new Map(),
    evicted: { lru: 0, inactive: 0, expired: 0 },
    corrupt: 0,
    reads: { native: 0, nativeBytes: 0, checked: 0, checkedBytes: 0, headBytes: 0 },
    heads: new HeadCache(HEAD_CACHE_BYTES),
    logSeq: 0,
    locks: new Map(),
    invalidations: { id: crypto.randomUUID(), seq: 0, ring: [], bytes: 0 },
    calls: {},
  };
  return state;
}

/** StoreStats.calls' names of the cache protocol's methods (POST calls are named by their path). */
const CALL_KINDS: Record<string, string> = { GET: "match", HEAD: "match", PUT: "put", PURGE: "purge", DELETE: "purge" };

function miss(): Response {
  return new Response(null, { status: 504, headers: { "cf-cache-status": "MISS" } });
}

function deleteFiles(env: StoreEnv, files: string[]): Promise<unknown> {
  return Promise.all(files.map((f) => env.DISK.fetch(DISK + f, { method: "DELETE" }).then((r) => r.body?.cancel()).catch(() => undefined)));
}

async function hashOf(request: Request): Promise<string> {
  return keyHash(request.headers.get("cf-cache-namespace") ?? "", request.url);
}

export default {
  async fetch(request: Request, env: StoreEnv, ctx: ExecutionContext): Promise<Response> {
    const s = stateFor(env);
    housekeeping(s, env, ctx);
    const kind = request.headers.has(LOCK_HEADER)
      ? "lookup-lock"
      : (CALL_KINDS[request.method] ?? (request.method === "POST" ? new URL(request.url).pathname.slice(1) : "other"));
    s.calls[kind] = (s.calls[kind] ?? 0) + 1;
    switch (request.method) {
      case "GET":
      case "HEAD": {
        const ttl = request.headers.get(LOCK_HEADER);
        if (ttl === null) return match(s, env, ctx, request);
        // A lookup that locks what it does not find: lookup and lock of a MISS in one round trip.
        const found = await match(s, env, ctx, request);
        if (found.status !== 504) return found;
        const hash = await hashOf(request);
        // Stored while this lookup ran (its hash was computed meanwhile): look again rather than fetch it twice.
        if (s.index.get(hash)) found.headers.set(LOCK_HEADER, "changed");
        else {
          const token = takeLock(s, hash, Number(ttl), Date.now());
          found.headers.set(token ? LOCK_TOKEN_HEADER : LOCK_HEADER, token ?? "held");
        }
        return found;
      }
      case "PUT":
        return put(s, env, ctx, request);
      case "PURGE":
      case "DELETE":
        return purge(s, env, ctx, request);
      case "POST":
        return withLogSeq(s, await control(s, request));
      default:
        return new Response(null, { status: 405 });
    }
  },
} satisfies ExportedHandler<StoreEnv>;

/**
 * The purge log's sequence on an answer an edge process gets on its lookup path (a match, a read of the ring): set
 * once the answer is made, so it is at least what was stored when the call arrived.
 */
function withLogSeq(s: State, res: Response): Response {
  const value = `${s.invalidations.id}.${s.logSeq}`;
  try {
    res.headers.set(LOG_SEQ_HEADER, value);
    return res;
  } catch {
    const copy = new Response(res.body, res); // immutable headers (a fetched response): a copy with its own
    copy.headers.set(LOG_SEQ_HEADER, value);
    return copy;
  }
}

/** Inactive and expired entries go; the use order is saved when it changed. */
function housekeeping(s: State, env: StoreEnv, ctx: ExecutionContext) {
  const now = Date.now();
  const every = Math.min(60_000, Math.max(250, (s.settings.inactiveSeconds * 1000) / 4));
  if (now - s.lastSweep >= every) {
    s.lastSweep = now;
    const gone = s.index.sweep(now, now - s.settings.inactiveSeconds * 1000);
    for (const e of gone) {
      if (e.expires <= now) s.evicted.expired++;
      else s.evicted.inactive++;
    }
    if (gone.length) {
      s.dirty = true;
      ctx.waitUntil(deleteFiles(env, gone.map((e) => e.file)));
    }
  }
  if (s.dirty && now - s.lastSave >= (s.settings.saveEverySeconds ?? 30) * 1000) {
    s.lastSave = now;
    s.dirty = false;
    const rows = s.index.list().map((e) => [e.file, e.lastAccess]);
    ctx.waitUntil(env.DISK.fetch(DISK + "lru.json", { method: "PUT", body: JSON.stringify(rows) }).then((r) => r.body?.cancel()).catch(() => undefined));
  }
}

/** A match (GET/HEAD of the cache protocol), with the purge log's sequence on its answer (see withLogSeq). */
async function match(s: State, env: StoreEnv, ctx: ExecutionContext, request: Request): Promise<Response> {
  return withLogSeq(s, await matchEntry(s, env, ctx, request));
}

async function matchEntry(s: State, env: StoreEnv, ctx: ExecutionContext, request: Request): Promise<Response> {
  const hash = await hashOf(request);
  const now = Date.now();
  const e = s.index.get(hash);
  if (!e) return miss();
  if (e.expires <= now || e.lastAccess < now - s.settings.inactiveSeconds * 1000) {
    if (e.expires <= now) s.evicted.expired++;
    else s.evicted.inactive++;
    s.index.remove(hash);
    s.dirty = true;
    ctx.waitUntil(deleteFiles(env, [e.file]));
    return miss();
  }
  s.index.touch(hash, now);
  s.dirty = true;

  const range = singleRange(request.headers.get("range"), e.bodyLen);
  if (range === null) {
    return new Response(null, {
      status: 416,
      headers: { "content-range": `bytes */${e.bodyLen}`, "cf-cache-status": "HIT" },
    });
  }
  const corrupt = () => dropCorrupt(s, env, ctx, hash, e);
  const from = range ? range.start : 0;
  const to = range ? range.end : e.bodyLen - 1;
  const first = Math.floor(from / BLOCK);
  const last = Math.max(first, Math.floor(to / BLOCK));
  const checks = (e.checks ??= new BlockChecks(e.bodyLen));
  const recheckMs = (s.settings.recheckSeconds ?? 600) * 1000;
  const wantsBody = request.method !== "HEAD" && e.bodyLen > 0;
  const table = tableLen(e.bodyLen);
  if (wantsBody && !range && e.headLen + e.bodyLen + table <= SMALL && !checks.covers(first, last, now, recheckMs)) {
    // A small body not checked lately: head, body and digests in one read, checked whole before anything is answered.
    const all = await readBytes(env, e.file, 0, e.headLen + e.bodyLen + table);
    if (!all) return gone(s, env, ctx, hash, e);
    s.reads.checked++;
    s.reads.checkedBytes += e.bodyLen;
    s.reads.headBytes += e.headLen;
    const headBytes = all.subarray(0, e.headLen);
    const body = all.subarray(e.headLen, e.headLen + e.bodyLen);
    if ((await headDigest(headBytes)) !== e.headHash || !(await bodyMatches(body, all.subarray(e.headLen + e.bodyLen)))) return corrupt();
    const head = decodeHead(headBytes);
    if (!head) return miss();
    s.heads.set(e.file, head, e.headLen);
    checks.mark(0, Date.now());
    return withDiskRef(s, hitResponse(head, body, e.bodyLen), e, checks.until(first, last, recheckMs));
  }

  let head = s.heads.get(e.file);
  if (!head) {
    const headBytes = await readBytes(env, e.file, 0, e.headLen);
    if (!headBytes) return gone(s, env, ctx, hash, e);
    s.reads.headBytes += e.headLen;
    if ((await headDigest(headBytes)) !== e.headHash) return corrupt();
    const decoded = decodeHead(headBytes);
    if (!decoded) return miss();
    s.heads.set(e.file, decoded, e.headLen);
    head = decoded;
  }
  if (!wantsBody) return hitResponse(head, null, e.bodyLen, range);
  if (checks.covers(first, last, now, recheckMs)) {
    const res = await nativeAnswer(s, env, ctx, hash, e, head, from, to, range);
    return range || res.status === 504 ? res : withDiskRef(s, res, e, checks.until(first, last, recheckMs));
  }

  // Blocks not checked lately: read in JavaScript, each passed on once it matched (and then served natively). A range
  // waits for a slot first, and reads natively after all when a request before it checked its blocks meanwhile.
  const held = range ? await blockReads.acquire() : undefined;
  if (held && checks.covers(first, last, Date.now(), recheckMs)) {
    held();
    return nativeAnswer(s, env, ctx, hash, e, head, from, to, range);
  }
  let handedOver = false;
  try {
    const digests = await readBytes(env, e.file, e.headLen + e.bodyLen, table);
    if (!digests) return gone(s, env, ctx, hash, e);
    const res = await env.DISK.fetch(DISK + e.file, {
      headers: { range: `bytes=${e.headLen + first * BLOCK}-${e.headLen + Math.min((last + 1) * BLOCK, e.bodyLen) - 1}` },
    });
    if (res.status !== 206 || !res.body) {
      await res.body?.cancel();
      return gone(s, env, ctx, hash, e);
    }
    s.reads.checked++;
    // Ranges take a slot per block read. Whole bodies do not: the edge may hold one unread while it reads a range of
    // the same entry (a Range of a large whole entry), and under a shared bound such bodies starved the ranges.
    const body = verifiedBody(res.body, {
      bodyLen: e.bodyLen,
      firstBlock: first,
      table: digests,
      from,
      to,
      onCorrupt: () => void corrupt(),
      slots: range ? blockReads : undefined,
      held,
      onChecked: (block) => checks.mark(block, Date.now()),
      onRead: (bytes) => (s.reads.checkedBytes += bytes),
    });
    handedOver = true;
    // Known length: the client can tell a body cut short by a failed check from a complete one.
    const length = to - from + 1;
    const fixed = new FixedLengthStream(length);
    void body.pipeTo(fixed.writable as unknown as WritableStream<Uint8Array>).catch(() => undefined);
    return hitResponse(head, fixed.readable as unknown as ReadableStream<Uint8Array>, e.bodyLen, range);
  } finally {
    if (!handedOver) held?.();
  }
}

/**
 * Bytes `from`..`to` of a body whose blocks were checked lately: the disk service's own body, returned untouched, so
 * workerd pumps it to the edge without JavaScript (and the edge to its client). Its length is the answer's.
 */
async function nativeAnswer(
  s: State,
  env: StoreEnv,
  ctx: ExecutionContext,
  hash: string,
  e: IndexEntry,
  head: StoredHead,
  from: number,
  to: number,
  range: { start: number; end: number } | undefined,
): Promise<Response> {
  const length = to - from + 1;
  const res = await env.DISK.fetch(DISK + e.file, { headers: { range: `bytes=${e.headLen + from}-${e.headLen + to}` } });
  if (res.status !== 206 || !res.body || res.headers.get("content-length") !== String(length)) {
    await res.body?.cancel();
    return gone(s, env, ctx, hash, e);
  }
  s.reads.native++;
  s.reads.nativeBytes += length;
  return hitResponse(head, res.body, e.bodyLen, range);
}

/**
 * A whole body whose blocks were all checked lately: the edge may read it from the file itself until the checks run
 * out (or the entry expires), without asking here again (DISK_REF_HEADER).
 */
function withDiskRef(s: State, res: Response, e: IndexEntry, checkedUntil: number): Response {
  // The edge asks again at least every DISK_REF_MS (half store_inactive when shorter): each ask is a use here, so
  // the use order (eviction, store_inactive) stays true to within that.
  const back = Date.now() + Math.min(DISK_REF_MS, (s.settings.inactiveSeconds * 1000) / 2);
  res.headers.set(DISK_REF_HEADER, formatDiskRef({ file: e.file, offset: e.headLen, length: e.bodyLen, until: Math.min(checkedUntil, e.expires, back) }));
  return res;
}

type AtLeastReader = ReadableStreamBYOBReader & { readAtLeast?: <T extends ArrayBufferView>(min: number, view: T) => Promise<ReadableStreamReadResult<T>> };

/**
 * Reads up to `length` bytes into `buffer` from `offset` (fewer only at the stream's end), in as few reads as the
 * stream allows. Each read transfers the buffer: the one to use afterwards is returned.
 */
async function readInto(reader: ReadableStreamBYOBReader, buffer: ArrayBuffer, offset: number, length: number): Promise<{ buffer: ArrayBuffer; filled: number }> {
  const r = reader as AtLeastReader;
  let filled = 0;
  while (filled < length) {
    const view = new Uint8Array(buffer, offset + filled, length - filled);
    const { done, value } = r.readAtLeast ? await r.readAtLeast(length - filled, view) : await r.read(view);
    if (value) {
      buffer = value.buffer as ArrayBuffer;
      filled += value.byteLength;
    }
    if (done || !value) break;
  }
  return { buffer, filled };
}

/** The file disappeared or is not what the index says: forget it, answer MISS. */
async function gone(s: State, env: StoreEnv, ctx: ExecutionContext, hash: string, e: IndexEntry) {
  s.heads.delete(e.file);
  if (s.index.get(hash) === e) {
    s.index.remove(hash);
    s.dirty = true;
    ctx.waitUntil(deleteFiles(env, [e.file]));
  }
  return miss();
}

/** A digest did not match: the entry goes (counted), the answer is a MISS. */
function dropCorrupt(s: State, env: StoreEnv, ctx: ExecutionContext, hash: string, e: IndexEntry): Promise<Response> {
  if (s.index.get(hash) === e) s.corrupt++;
  return gone(s, env, ctx, hash, e);
}

/** Exactly `length` bytes of a file from `start`, or null. */
async function readBytes(env: StoreEnv, file: string, start: number, length: number): Promise<Uint8Array | null> {
  if (length === 0) return new Uint8Array(0);
  const res = await env.DISK.fetch(DISK + file, { headers: { range: `bytes=${start}-${start + length - 1}` } });
  if (res.status !== 206 && res.status !== 200) {
    await res.body?.cancel();
    return null;
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  return bytes.byteLength === length ? bytes : null;
}

async function put(s: State, env: StoreEnv, ctx: ExecutionContext, request: Request): Promise<Response> {
  if (!request.body) return new Response(null, { status: 413 });
  const hash = await hashOf(request);
  const reader = request.body.getReader();
  const refuse = async () => {
    await reader.cancel().catch(() => undefined);
    return new Response(null, { status: 413 });
  };

  // The serialized response's head.
  let buf = new Uint8Array(0);
  let end = -1;
  while (end < 0) {
    const { done, value } = await reader.read();
    if (done || buf.byteLength > MAX_HEAD) return refuse();
    const next = new Uint8Array(buf.byteLength + value.byteLength);
    next.set(buf);
    next.set(value, buf.byteLength);
    buf = next;
    end = findHeadEnd(buf);
  }
  const parsed = parseHttpHead(new TextDecoder().decode(buf.subarray(0, end)));
  if (!parsed) return refuse();
  const written = Date.now();
  const lifetime = lifetimeSeconds(parsed.headers);
  if (lifetime === null) return refuse();
  const cl = parsed.headers.find(([n]) => n === "content-length")?.[1];
  const declared = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
  const headBytes = encodeHead(parsed);
  const headHash = await headDigest(headBytes);
  const max = s.settings.maxBytes;
  if (declared !== undefined && fileLength(headBytes.byteLength, declared) > max) return refuse();

  // Room first: the whole size when it is known, else as the bytes arrive. A write that cannot get room (the rest
  // is taken by other writes under way) is refused rather than overflow the bound.
  const reservation = s.index.reserve(fileLength(headBytes.byteLength, declared ?? 0));
  const maxEntries = s.settings.maxEntries ?? Infinity;
  const makeRoom = () => {
    const evicted = s.index.evictToFit(max, maxEntries - 1); // and room for this entry
    s.evicted.lru += evicted.length;
    if (evicted.length) {
      s.dirty = true;
      ctx.waitUntil(deleteFiles(env, evicted.map((e) => e.file)));
    }
    return s.index.total + s.index.reserved <= max;
  };
  if (!makeRoom()) {
    reservation.release();
    return refuse();
  }

  const writeId = written.toString(36) + (s.writes++ % 1296).toString(36).padStart(2, "0") + Math.random().toString(36).slice(2, 6);
  const file = fileName(hash, writeId);
  const expires = written + lifetime * 1000;
  const hasher = new BlockHasher();
  let count = 0;
  let complete = false;
  let pending = buf.subarray(end + 4); // body bytes that came with the head
  reader.releaseLock();
  const body = request.body.getReader({ mode: "byob" });
  // A small body of a known length is read whole (one read when it came with the head), checked and hashed, and the
  // file written in one piece: the disk service then takes a buffer instead of pulling a stream through JavaScript.
  const small = declared !== undefined && fileLength(headBytes.byteLength, declared) <= SMALL;
  /**
   * The whole file of a small entry, or null when the body is not exactly `declared` bytes or fails. One buffer: the
   * body is read into its place (workerd's readAtLeast) and hashed there, a block at a time, without copies.
   */
  const smallFile = async (): Promise<Uint8Array | null> => {
    const length = declared!;
    const at = headBytes.byteLength;
    if (pending.byteLength > length) return null; // longer than announced
    const start = new Uint8Array(fileLength(at, length));
    start.set(headBytes);
    start.set(pending, at);
    const read = await readInto(body, start.buffer as ArrayBuffer, at + pending.byteLength, length - pending.byteLength);
    if (read.filled !== length - pending.byteLength || (await readBlock(body, 1)).byteLength) return null; // shorter, or longer
    const out = new Uint8Array(read.buffer);
    count = length;
    const table = await digestTable(out.subarray(at, at + length));
    out.set(table, at + length);
    out.set(encodeTrailer({ h: at, b: count, e: expires, w: written, hh: headHash }), at + length + table.byteLength);
    complete = true;
    return out;
  };
  // Larger ones, or of unknown length: head, body (a block per read, hashed on the way), digest table, trailer. Whatever
  // goes wrong (the edge's body fails, it is longer or shorter than announced, no room) ends the upload normally
  // without a trailer, so the disk service finishes its write and the file can then be deleted for sure: no write
  // the bounds do not count.
  const upload = small ? null : new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(headBytes);
    },
    async pull(c) {
      const finish = async () => {
        c.enqueue(await hasher.table());
        c.enqueue(encodeTrailer({ h: headBytes.byteLength, b: count, e: expires, w: written, hh: headHash }));
        complete = true;
        c.close();
      };
      try {
        if (declared !== undefined && count === declared) {
          const extra = pending.byteLength ? pending : await readBlock(body, 1);
          return extra.byteLength ? c.close() : await finish(); // longer than announced: no trailer
        }
        const want = declared !== undefined ? Math.min(BLOCK, declared - count) : BLOCK;
        let block: Uint8Array;
        if (pending.byteLength >= want) {
          block = pending.subarray(0, want);
          pending = pending.subarray(want);
        } else {
          block = await readBlock(body, want, pending);
          pending = new Uint8Array(0);
        }
        if (!block.byteLength) return declared !== undefined ? c.close() : await finish(); // shorter than announced: no trailer
        if (!take(c, block)) {
          await body.cancel().catch(() => undefined);
          c.close();
        }
      } catch {
        c.close(); // the edge's body failed: no trailer
      }
    },
    cancel(reason) {
      return body.cancel(reason);
    },
  });
  /** Passes one chunk of body on; false when it breaks a bound (the upload then ends without a trailer). */
  function take(c: ReadableStreamDefaultController<Uint8Array>, chunk: Uint8Array): boolean {
    const before = count;
    count += chunk.byteLength;
    if (declared !== undefined ? count > declared : fileLength(headBytes.byteLength, count) > max) return false;
    if (declared === undefined) {
      reservation.grow(fileLength(0, count) - fileLength(0, before));
      if (!makeRoom()) return false;
    }
    hasher.update(chunk);
    c.enqueue(chunk);
    return true;
  }

  // The write and what follows it run as waitUntil work: when the edge goes away mid-upload (its client left),
  // workerd cancels this request, but the cleanup of the partial file must still happen.
  const finished = (async (): Promise<Response> => {
    let ok = false;
    try {
      const source = small ? await smallFile() : upload;
      if (source) {
        const res = await env.DISK.fetch(DISK + file, { method: "PUT", body: source });
        await res.body?.cancel();
        ok = res.ok && complete;
      }
    } catch {
      ok = false;
    }
    if (!ok) {
      // The disk service finished this write (the upload ended normally): its file has no trailer; remove it before
      // its bytes leave the reservation.
      await deleteFiles(env, [file]);
      reservation.release();
      await body.cancel().catch(() => undefined);
      return new Response(null, { status: 413 });
    }
    reservation.release();
    s.locks.delete(hash); // whoever waits for this key finds it now
    if ((s.purged.get(hash) ?? -1) >= written) {
      await deleteFiles(env, [file]);
      return new Response(null, { status: 204 });
    }
    const now = Date.now();
    const entry: IndexEntry = { hash, file, headLen: headBytes.byteLength, bodyLen: count, expires, written, lastAccess: now, headHash, indexedAt: now };
    const stale = s.index.add(entry);
    if (storageKeyOf(request.url) === PURGE_LOG_KEY) s.logSeq++; // visible from here on (see withLogSeq)
    // A replaced entry may be held in another edge process's memory tier: it reads the ring before it serves it.
    const replaced = stale ? storageKeyOf(request.url) : null;
    if (replaced !== null) announce(s, [replaced]);
    const over = s.index.evictToFit(max, maxEntries);
    s.evicted.lru += over.length;
    s.dirty = true;
    const drop = [...(stale ? [stale] : []), ...over.map((e) => e.file)];
    if (drop.length) ctx.waitUntil(deleteFiles(env, drop));
    return new Response(null, { status: 204 });
  })();
  ctx.waitUntil(finished);
  return finished;
}

async function purge(s: State, env: StoreEnv, ctx: ExecutionContext, request: Request): Promise<Response> {
  const hash = await hashOf(request);
  if (s.purged.size > 10_000) s.purged.clear();
  s.purged.set(hash, Date.now());
  const e = s.index.remove(hash);
  if (!e) return new Response(null, { status: 404 });
  const key = storageKeyOf(request.url);
  if (key === PURGE_LOG_KEY) s.logSeq++;
  if (key !== null) announce(s, [key]);
  s.dirty = true;
  ctx.waitUntil(deleteFiles(env, [e.file]));
  return new Response(null, { status: 200 });
}


const LOCK_MAX_TTL = 600_000;

/** Takes the lock of `hash` for `ttl` ms (5 s when not a number): its token, or null when another holds it. */
function takeLock(s: State, hash: string, ttl: number, now: number): string | null {
  const held = s.locks.get(hash);
  if (held && held.expires > now) return null;
  if (s.locks.size >= 10_000) for (const [k, l] of s.locks) if (l.expires <= now) s.locks.delete(k);
  const token = crypto.randomUUID();
  s.locks.set(hash, { token, expires: now + Math.min(LOCK_MAX_TTL, Math.max(1, ttl || 5_000)) });
  return token;
}

/** Ring bounds: a client flood of invalidations costs at most this much memory, never disk. */
const RING_KEYS = 10_000;
const RING_BYTES = 4 * 1024 * 1024;
const INVALIDATE_BODY_MAX = 256 * 1024;

/** Puts keys in the ring the edge processes read to drop their memory copies (bounded: the oldest go). */
function announce(s: State, keys: string[]) {
  const inv = s.invalidations;
  for (const key of keys) {
    inv.ring.push({ seq: ++inv.seq, key });
    inv.bytes += key.length;
  }
  while (inv.ring.length > RING_KEYS || inv.bytes > RING_BYTES) inv.bytes -= inv.ring.shift()!.key.length;
}

/** The edge's storage key of a cache URL (see cacheUrl), or null for another URL. */
function storageKeyOf(url: string): string | null {
  try {
    return decodeURIComponent(new URL(url).pathname.slice(1));
  } catch {
    return null;
  }
}

/** The edge's calls (POST, src/contracts/store.ts): coalescing locks, invalidations between processes, stats. */
async function control(s: State, request: Request): Promise<Response> {
  const url = new URL(request.url);
  const now = Date.now();
  if (url.pathname === INVALIDATE_PATH) {
    const text = await request.text();
    let keys: unknown;
    try {
      keys = text.length <= INVALIDATE_BODY_MAX ? JSON.parse(text) : undefined;
    } catch {
      keys = undefined;
    }
    if (!Array.isArray(keys) || keys.some((k) => typeof k !== "string")) return new Response(null, { status: 400 });
    announce(s, keys as string[]);
    return new Response(null, { status: 204 });
  }
  if (url.pathname === INVALIDATED_PATH) {
    const since = Number(url.searchParams.get("since"));
    const inv = s.invalidations;
    const first = inv.ring[0]?.seq ?? inv.seq + 1;
    // A caller of another ring heard of this store before it restarted: what it missed is unknown, it forgets all.
    const current = url.searchParams.get("ring") === inv.id && Number.isInteger(since) && since >= first - 1 && since <= inv.seq;
    // Nothing new (a memory-tier HIT on a box with several processes asks this): no body to make or read.
    if (current && since === inv.seq) return new Response(null, { status: 204 });
    // The ring's sequence numbers are consecutive: the keys after `since` are its tail.
    const answer: Invalidations = current
      ? { ring: inv.id, seq: inv.seq, keys: inv.ring.slice(since - first + 1).map((r) => r.key) }
      : { ring: inv.id, seq: inv.seq, keys: [], reset: true };
    return Response.json(answer);
  }
  const target = url.searchParams.get("url");
  const hash = target === null ? "" : await keyHash("", target);
  switch (url.pathname) {
    case LOCK_PATH: {
      const since = Number(url.searchParams.get("since"));
      const e = s.index.get(hash);
      // Stored since the caller's lookup began: it became visible (was indexed) after that moment.
      if (Number.isFinite(since) && url.searchParams.has("since") && e && (e.indexedAt ?? 0) >= since) {
        return new Response(null, { headers: { [CHANGED_HEADER]: "1" } });
      }
      const token = takeLock(s, hash, Number(url.searchParams.get("ttl")), now);
      return token === null ? new Response(null, { status: 409 }) : new Response(token);
    }
    case UNLOCK_PATH: {
      const held = s.locks.get(hash);
      if (held && held.token === url.searchParams.get("token")) s.locks.delete(hash);
      return new Response(null, { status: 200 });
    }
    case RENEW_PATH: {
      const held = s.locks.get(hash);
      if (!held || held.token !== url.searchParams.get("token") || held.expires <= now) return new Response(null, { status: 409 });
      held.expires = now + Math.min(LOCK_MAX_TTL, Math.max(1, Number(url.searchParams.get("ttl")) || 5_000));
      return new Response(null, { status: 200 });
    }
    case LOCKED_PATH: {
      const held = s.locks.get(hash);
      return new Response(null, { status: held && held.expires > now ? 200 : 404 });
    }
    case STATS_PATH: {
      const stats: StoreStats = {
        bytes: s.index.total,
        entries: s.index.size,
        maxBytes: s.settings.maxBytes,
        maxEntries: s.settings.maxEntries,
        evictions: { ...s.evicted },
        locks: s.locks.size,
        corrupt: s.corrupt,
        reads: { ...s.reads },
        calls: { ...s.calls },
      };
      return Response.json(stats);
    }
    default:
      return new Response(null, { status: 404 });
  }
}
