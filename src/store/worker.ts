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
  TRAILER_LEN,
  decodeHead,
  encodeHead,
  encodeTrailer,
  fileName,
  findHeadEnd,
  keyHash,
  lifetimeSeconds,
  parseHttpHead,
  singleRange,
  type StoredHead,
} from "./format.ts";
import { StoreIndex, type IndexEntry } from "./lru.ts";
import {
  CHANGED_HEADER,
  INVALIDATED_PATH,
  INVALIDATE_PATH,
  LOCKED_PATH,
  LOCK_PATH,
  STATS_PATH,
  UNLOCK_PATH,
  type IndexRow,
  type Invalidations,
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
const DISK = "http://disk/";

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
  /** Coalescing locks: cache URL hash → holder's token and expiry (ms); a PUT of the URL releases its lock. */
  locks: Map<string, { token: string; expires: number }>;
  /** Client invalidations for the edge processes' memory tiers: the newest, oldest first, bounded (see /invalidate). */
  invalidations: { seq: number; ring: { seq: number; key: string }[]; bytes: number };
}

let state: State | undefined;

function stateFor(env: StoreEnv): State {
  if (state) return state;
  const index = new StoreIndex();
  for (const [hash, file, headLen, bodyLen, expires, written, lastAccess] of env.STORE_INDEX ?? []) {
    index.add({ hash, file, headLen, bodyLen, expires, written, lastAccess });
  }
  state = { index, settings: env.STORE, lastSweep: Date.now(), lastSave: Date.now(), dirty: false, writes: 0, purged: new Map(), evicted: { lru: 0, inactive: 0, expired: 0 }, locks: new Map(), invalidations: { seq: 0, ring: [], bytes: 0 } };
  return state;
}

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
    switch (request.method) {
      case "GET":
      case "HEAD":
        return match(s, env, ctx, request);
      case "PUT":
        return put(s, env, ctx, request);
      case "PURGE":
      case "DELETE":
        return purge(s, env, ctx, request);
      case "POST":
        return control(s, request);
      default:
        return new Response(null, { status: 405 });
    }
  },
} satisfies ExportedHandler<StoreEnv>;

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

async function match(s: State, env: StoreEnv, ctx: ExecutionContext, request: Request): Promise<Response> {
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
  let head: StoredHead | null;
  let body: ReadableStream<Uint8Array> | null;
  if (range) {
    const [h, b] = await Promise.all([
      readRange(env, e.file, 0, e.headLen - 1),
      env.DISK.fetch(DISK + e.file, { headers: { range: `bytes=${e.headLen + range.start}-${e.headLen + range.end}` } }),
    ]);
    if (b.status !== 206 || !h) return gone(s, env, ctx, hash, e, b);
    head = decodeHead(h);
    body = b.body;
  } else {
    const res = await env.DISK.fetch(DISK + e.file, {
      headers: { range: `bytes=0-${e.headLen + e.bodyLen - 1}` },
    });
    if (res.status !== 206 && res.status !== 200) return gone(s, env, ctx, hash, e, res);
    if (e.headLen + e.bodyLen <= SMALL) {
      // Small: one read into memory is cheaper than splitting a stream.
      const all = new Uint8Array(await res.arrayBuffer());
      if (all.byteLength !== e.headLen + e.bodyLen) return gone(s, env, ctx, hash, e, null);
      head = decodeHead(all.subarray(0, e.headLen));
      body = null;
      const bytes = all.subarray(e.headLen);
      return answer(request, head, bytes, e, s, env, ctx, hash);
    }
    const split = await splitHead(res.body!, e.headLen, e.bodyLen, ctx);
    if (!split) return gone(s, env, ctx, hash, e, null);
    head = decodeHead(split.head);
    body = split.body;
  }
  if (!head) {
    await body?.cancel();
    return gone(s, env, ctx, hash, e, null);
  }
  return answer(request, head, body, e, s, env, ctx, hash, range);
}

/** The HIT response: the stored status and headers, the body (or the range) with its length. */
async function answer(
  request: Request,
  head: StoredHead | null,
  body: ReadableStream<Uint8Array> | Uint8Array | null,
  e: IndexEntry,
  s: State,
  env: StoreEnv,
  ctx: ExecutionContext,
  hash: string,
  range?: { start: number; end: number },
): Promise<Response> {
  if (!head) return gone(s, env, ctx, hash, e, null);
  const headers = new Headers();
  for (const [n, v] of head.headers) headers.append(n, v);
  headers.set("cf-cache-status", "HIT");
  if (range) {
    headers.set("content-range", `bytes ${range.start}-${range.end}/${e.bodyLen}`);
    headers.set("content-length", String(range.end - range.start + 1));
  } else {
    headers.set("content-length", String(e.bodyLen));
  }
  if (request.method === "HEAD") {
    if (body instanceof ReadableStream) await body.cancel();
    body = null;
  }
  return new Response(body, { status: range ? 206 : head.status, statusText: range ? "Partial Content" : head.statusText, headers });
}

/** The file disappeared or is not what the index says: forget it, answer MISS. */
async function gone(s: State, env: StoreEnv, ctx: ExecutionContext, hash: string, e: IndexEntry, res: Response | null) {
  await res?.body?.cancel();
  if (s.index.get(hash) === e) {
    s.index.remove(hash);
    s.dirty = true;
    ctx.waitUntil(deleteFiles(env, [e.file]));
  }
  return miss();
}

async function readRange(env: StoreEnv, file: string, start: number, end: number): Promise<Uint8Array | null> {
  const res = await env.DISK.fetch(DISK + file, { headers: { range: `bytes=${start}-${end}` } });
  if (res.status !== 206) {
    await res.body?.cancel();
    return null;
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  return bytes.byteLength === end - start + 1 ? bytes : null;
}

/** Reads the first `headLen` bytes of a stream; the rest (`bodyLen` bytes) is piped on natively, its length known. */
async function splitHead(
  stream: ReadableStream<Uint8Array>,
  headLen: number,
  bodyLen: number,
  ctx: ExecutionContext,
): Promise<{ head: Uint8Array; body: ReadableStream<Uint8Array> } | null> {
  const reader = stream.getReader();
  const head = new Uint8Array(headLen);
  let got = 0;
  let rest: Uint8Array | null = null;
  while (got < headLen) {
    const { done, value } = await reader.read();
    if (done) return null;
    const take = Math.min(value.byteLength, headLen - got);
    head.set(value.subarray(0, take), got);
    got += take;
    if (take < value.byteLength) rest = value.subarray(take);
  }
  reader.releaseLock();
  if (!rest) return { head, body: stream };
  const { readable, writable } = new FixedLengthStream(bodyLen);
  const leftover = rest;
  ctx.waitUntil(
    (async () => {
      const w = writable.getWriter();
      await w.write(leftover);
      w.releaseLock();
      await stream.pipeTo(writable);
    })().catch(() => undefined),
  );
  return { head, body: readable as unknown as ReadableStream<Uint8Array> };
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
  const max = s.settings.maxBytes;
  const maxBody = max - headBytes.byteLength - TRAILER_LEN;
  if (declared !== undefined && declared > maxBody) return refuse();

  // Room first: the whole size when it is known, else as the bytes arrive. A write that cannot get room (the rest
  // is taken by other writes under way) is refused rather than overflow the bound.
  const reservation = s.index.reserve(headBytes.byteLength + TRAILER_LEN + (declared ?? 0));
  const makeRoom = () => {
    const evicted = s.index.evictToFit(max);
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
  let count = 0;
  let complete = false;
  const first = buf.subarray(end + 4);
  let upload: ReadableStream<Uint8Array>;
  let piped: Promise<void> = Promise.resolve();
  if (declared !== undefined && first.byteLength <= declared) {
    // Known length: the body is piped natively (no JavaScript per chunk); the stream's fixed length makes the
    // upload fail if the body ends early, and the trailer follows only a body that ended normally.
    const fixed = new FixedLengthStream(headBytes.byteLength + declared + TRAILER_LEN);
    upload = fixed.readable as unknown as ReadableStream<Uint8Array>;
    const writable = fixed.writable as unknown as WritableStream<Uint8Array>;
    piped = (async () => {
      let w = writable.getWriter();
      await w.write(headBytes);
      if (first.byteLength) await w.write(first);
      w.releaseLock();
      reader.releaseLock();
      await request.body!.pipeTo(writable, { preventClose: true });
      w = writable.getWriter();
      await w.write(encodeTrailer({ h: headBytes.byteLength, b: declared, e: expires, w: written }));
      await w.close();
      count = declared;
      complete = true;
    })();
    piped.catch(() => writable.abort().catch(() => undefined));
  } else {
    upload = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(headBytes);
        if (first.byteLength) {
          count += first.byteLength;
          reservation.grow(first.byteLength);
          c.enqueue(first);
        }
      },
      async pull(c) {
        if (count > maxBody) return c.error(new Error("larger than the store"));
        const { done, value } = await reader.read();
        if (done) {
          if (declared !== undefined && count !== declared) return c.error(new Error("body shorter than announced"));
          c.enqueue(encodeTrailer({ h: headBytes.byteLength, b: count, e: expires, w: written }));
          complete = true;
          return c.close();
        }
        count += value.byteLength;
        if (count > maxBody || (declared !== undefined && count > declared)) {
          await reader.cancel().catch(() => undefined);
          return c.error(new Error("body longer than allowed"));
        }
        reservation.grow(value.byteLength);
        if (!makeRoom()) {
          await reader.cancel().catch(() => undefined);
          return c.error(new Error("no room in the store"));
        }
        c.enqueue(value);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    });
  }

  let ok = false;
  try {
    const [res] = await Promise.all([env.DISK.fetch(DISK + file, { method: "PUT", body: upload }), piped.catch(() => undefined)]);
    await res.body?.cancel();
    ok = res.ok && complete;
  } catch {
    ok = false;
  } finally {
    reservation.release();
  }
  if (!ok) {
    // The disk service may have committed what it got: that file has no trailer and no index entry; remove it.
    ctx.waitUntil(deleteFiles(env, [file]));
    await reader.cancel().catch(() => undefined);
    await request.body?.cancel().catch(() => undefined);
    return new Response(null, { status: 413 });
  }
  s.locks.delete(hash); // whoever waits for this key finds it now
  if ((s.purged.get(hash) ?? -1) >= written) {
    ctx.waitUntil(deleteFiles(env, [file]));
    return new Response(null, { status: 204 });
  }
  const entry: IndexEntry = { hash, file, headLen: headBytes.byteLength, bodyLen: count, expires, written, lastAccess: Date.now() };
  const stale = s.index.add(entry);
  const over = s.index.evictToFit(max);
  s.evicted.lru += over.length;
  s.dirty = true;
  const drop = [...(stale ? [stale] : []), ...over.map((e) => e.file)];
  if (drop.length) ctx.waitUntil(deleteFiles(env, drop));
  return new Response(null, { status: 204 });
}

async function purge(s: State, env: StoreEnv, ctx: ExecutionContext, request: Request): Promise<Response> {
  const hash = await hashOf(request);
  if (s.purged.size > 10_000) s.purged.clear();
  s.purged.set(hash, Date.now());
  const e = s.index.remove(hash);
  if (!e) return new Response(null, { status: 404 });
  s.dirty = true;
  ctx.waitUntil(deleteFiles(env, [e.file]));
  return new Response(null, { status: 200 });
}


const LOCK_MAX_TTL = 600_000;

/** Ring bounds: a client flood of invalidations costs at most this much memory, never disk. */
const RING_KEYS = 10_000;
const RING_BYTES = 4 * 1024 * 1024;
const INVALIDATE_BODY_MAX = 256 * 1024;

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
    const inv = s.invalidations;
    for (const key of keys as string[]) {
      inv.ring.push({ seq: ++inv.seq, key });
      inv.bytes += key.length;
    }
    while (inv.ring.length > RING_KEYS || inv.bytes > RING_BYTES) inv.bytes -= inv.ring.shift()!.key.length;
    return new Response(null, { status: 204 });
  }
  if (url.pathname === INVALIDATED_PATH) {
    const since = Number(url.searchParams.get("since"));
    const inv = s.invalidations;
    const first = inv.ring[0]?.seq ?? inv.seq + 1;
    const answer: Invalidations =
      Number.isInteger(since) && since >= first - 1
        ? { seq: inv.seq, keys: inv.ring.filter((r) => r.seq > since).map((r) => r.key) }
        : { seq: inv.seq, keys: [], reset: true };
    return Response.json(answer);
  }
  // workerd sends the default cache's requests to this worker as http:// URLs: hash the URL the same way.
  const target = url.searchParams.get("url")?.replace(/^https:/, "http:");
  const hash = target === undefined ? "" : await keyHash("", target);
  switch (url.pathname) {
    case LOCK_PATH: {
      const since = Number(url.searchParams.get("since"));
      const e = s.index.get(hash);
      if (Number.isFinite(since) && url.searchParams.has("since") && e && e.written > since) {
        return new Response(null, { headers: { [CHANGED_HEADER]: "1" } });
      }
      const held = s.locks.get(hash);
      if (held && held.expires > now) return new Response(null, { status: 409 });
      if (s.locks.size >= 10_000) for (const [k, l] of s.locks) if (l.expires <= now) s.locks.delete(k);
      const ttl = Math.min(LOCK_MAX_TTL, Math.max(1, Number(url.searchParams.get("ttl")) || 5_000));
      const token = crypto.randomUUID();
      s.locks.set(hash, { token, expires: now + ttl });
      return new Response(token);
    }
    case UNLOCK_PATH: {
      const held = s.locks.get(hash);
      if (held && held.token === url.searchParams.get("token")) s.locks.delete(hash);
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
        evictions: { ...s.evicted },
        locks: s.locks.size,
      };
      return Response.json(stats);
    }
    default:
      return new Response(null, { status: 404 });
  }
}
