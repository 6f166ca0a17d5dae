/**
 * Where entries live. The engine speaks only this interface; `CacheApiStore` puts entries into the standard
 * Workers Cache API (Miniflare, wrangler dev, workerd with a cacheApiOutbound service), `MemoryStore` keeps them in
 * the isolate (tests with a fake clock).
 */
import type { StoredMeta } from "../cache/entry.ts";
import { cacheUrl, DISK_REF_HEADER, LOCK_HEADER, LOCK_TOKEN_HEADER, LOG_SEQ_HEADER, parseDiskRef, type DiskRef } from "../contracts/store.ts";

export interface StoredEntry {
  meta: StoredMeta;
  body: ReadableStream<Uint8Array> | null;
  /** The whole body, when a memory tier holds it: answered as it is, without a stream. */
  bytes?: Uint8Array;
  /** Where the disk store keeps the whole body, checked, and until when the edge may read it there itself. */
  disk?: DiskRef;
}

/**
 * A lookup that also takes the key's coalescing lock when it finds nothing (a box whose store holds the locks: one
 * round trip for both). The store fills in what happened; left unset when it could not ask (the caller claims then).
 */
export interface LookupLock {
  ttlMs: number;
  got?: "taken" | "held" | "changed";
  /** The lock's token when `got` is "taken". */
  token?: string;
}

export interface EntryStore {
  get(key: string, lock?: LookupLock): Promise<StoredEntry | null>;
  /**
   * Bytes `start`..`end` (inclusive) of an entry's body, read by the store itself (a disk seek rather than a read
   * from the start): null when the store cannot, or has nothing there. Optional: the engine slices the body otherwise.
   */
  getRange?(key: string, start: number, end: number): Promise<StoredEntry | null>;
  /** Stores `meta` and the whole `body`; rejects (storing nothing) when the body fails midway. */
  put(key: string, meta: StoredMeta, body: ReadableStream<Uint8Array> | null, ttlSeconds: number): Promise<void>;
  /** Removes the entry; true when there was one. */
  delete(key: string): Promise<boolean>;
}

const META_HEADER = "x-parrot-meta";

/**
 * Entries in the runtime's Cache API. The stored response carries only our metadata header and a plain
 * `Cache-Control: max-age` of the physical lifetime, so the runtime's own rules (it drops Set-Cookie, private,
 * 206, Vary: * responses) never apply to what the origin sent: those decisions are the engine's.
 */
export class CacheApiStore implements EntryStore {
  private readonly cache: Promise<Cache>;
  private readonly checkUploads: boolean;
  private readonly logSequence: { see(value: string | null): void } | undefined;
  private readonly lockingLookups: Fetcher | undefined;
  /**
   * `checkUploads`: follow every body on its way in and remove what a put kept of one that failed or had another
   * length than announced (Miniflare: its Cache API commits an upload that failed midway). The disk store checks
   * lengths itself. `logSequence`: hears the purge log's sequence the disk store puts on its answers.
   * `lockingLookups`: the store service that holds the box's locks, asked directly (the cache protocol's GET and a
   * lock header) when a lookup wants the key's lock (see LookupLock).
   */
  constructor(
    cache: Cache | Promise<Cache>,
    opts: { checkUploads?: boolean; logSequence?: { see(value: string | null): void }; lockingLookups?: Fetcher } = {},
  ) {
    this.cache = Promise.resolve(cache);
    this.checkUploads = opts.checkUploads ?? false;
    this.logSequence = opts.logSequence;
    this.lockingLookups = opts.lockingLookups;
  }

  async get(key: string, lock?: LookupLock): Promise<StoredEntry | null> {
    const res = lock && this.lockingLookups ? await this.lookupLocking(this.lockingLookups, key, lock) : await (await this.cache).match(cacheUrl(key));
    if (!res) return null;
    this.logSequence?.see(res.headers.get(LOG_SEQ_HEADER));
    const meta = parseMeta(res.headers.get(META_HEADER));
    if (!meta) {
      await res.body?.cancel();
      return null;
    }
    // A body that arrived without Content-Length was counted by the store: its size is known from here on.
    const length = res.headers.get("content-length");
    const known = length !== null && /^\d+$/.test(length) ? Number(length) : undefined;
    if (meta.kind === "entry" && meta.size === undefined && known !== undefined) meta.size = known;
    const expected = expectedLength(meta);
    if (expected !== undefined && known !== undefined && known !== expected) {
      await res.body?.cancel();
      return null; // not the body its meta describes: never served as complete
    }
    const disk = parseDiskRef(res.headers.get(DISK_REF_HEADER));
    return disk && disk.length === known ? { meta, body: res.body, disk } : { meta, body: res.body };
  }

  /** The store's HIT, or undefined with `lock` filled in from its MISS (see src/contracts/store.ts). */
  private async lookupLocking(store: Fetcher, key: string, lock: LookupLock): Promise<Response | undefined> {
    const res = await store.fetch(cacheUrl(key), { headers: { "cache-control": "only-if-cached", [LOCK_HEADER]: String(Math.max(1, lock.ttlMs)) } });
    if (res.headers.get("cf-cache-status") === "HIT") return res;
    await res.body?.cancel();
    const token = res.headers.get(LOCK_TOKEN_HEADER);
    const other = res.headers.get(LOCK_HEADER);
    if (token) Object.assign(lock, { got: "taken", token });
    else if (other === "held" || other === "changed") lock.got = other;
    return undefined;
  }

  async getRange(key: string, start: number, end: number): Promise<StoredEntry | null> {
    const res = await (await this.cache).match(new Request(cacheUrl(key), { headers: { range: `bytes=${start}-${end}` } }));
    if (!res) return null;
    this.logSequence?.see(res.headers.get(LOG_SEQ_HEADER));
    const meta = res.status === 206 ? parseMeta(res.headers.get(META_HEADER)) : undefined;
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
    const expected = meta ? expectedLength(meta) : undefined;
    // The range asked for, of a body of the length the meta announces (when it announces one).
    if (!meta || !range || Number(range[1]) !== start || Number(range[2]) !== end || (expected !== undefined && Number(range[3]) !== expected)) {
      await res.body?.cancel();
      return null;
    }
    return { meta, body: res.body };
  }

  async put(key: string, meta: StoredMeta, body: ReadableStream<Uint8Array> | null, ttlSeconds: number): Promise<void> {
    const headers = new Headers({
      "cache-control": `max-age=${Math.max(1, Math.ceil(ttlSeconds))}`,
      [META_HEADER]: encodeURIComponent(JSON.stringify(meta)),
    });
    const cache = await this.cache;
    if (!body || !this.checkUploads) return cache.put(cacheUrl(key), new Response(body, { status: 200, headers }));
    const counted = countedBody(body, expectedLength(meta));
    await cache.put(cacheUrl(key), new Response(counted.body, { status: 200, headers }));
    if (!counted.whole()) {
      await cache.delete(cacheUrl(key)).catch(() => false);
      throw new Error("the body did not arrive whole: not stored");
    }
  }

  async delete(key: string): Promise<boolean> {
    return (await this.cache).delete(cacheUrl(key));
  }
}

/** The body length a meta announces (Content-Length of a response, a slice's span), if any. */
export function expectedLength(meta: StoredMeta): number | undefined {
  // A content-coded body is decoded by the runtime's fetch while Content-Length still counts the coded bytes.
  if (meta.kind === "entry") return meta.headers.some(([n, v]) => n === "content-encoding" && v.trim().toLowerCase() !== "identity") ? undefined : meta.size;
  if (meta.kind === "slice") return meta.end - meta.start + 1;
  return undefined;
}

/**
 * The body, made to fail unless it is exactly `length` bytes long (counted on the way): a body shorter or longer than
 * announced is never stored as complete. Used where the runtime's HTTP framing does not already guarantee it.
 */
export function exactLength(body: ReadableStream<Uint8Array>, length: number): ReadableStream<Uint8Array> {
  let seen = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > length) controller.error(new Error(`body longer than its ${length} bytes`));
        else controller.enqueue(chunk);
      },
      flush(controller) {
        if (seen !== length) controller.error(new Error(`body of ${seen} bytes, ${length} announced`));
      },
    }),
  );
}

/** A body passed through and counted: `whole()` once it ended normally with `length` bytes (when one is known). */
function countedBody(body: ReadableStream<Uint8Array>, length: number | undefined) {
  let seen = 0;
  let whole = false;
  const counted = body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (length !== undefined && seen > length) controller.error(new Error(`body longer than its ${length} bytes`));
        else controller.enqueue(chunk);
      },
      flush(controller) {
        if (length !== undefined && seen !== length) controller.error(new Error(`body of ${seen} bytes, ${length} announced`));
        else whole = true;
      },
    }),
  );
  return { body: counted, whole: () => whole };
}

function parseMeta(raw: string | null): StoredMeta | undefined {
  try {
    const meta = raw ? (JSON.parse(decodeURIComponent(raw)) as StoredMeta) : undefined;
    return meta?.key === undefined ? undefined : meta;
  } catch {
    return undefined;
  }
}

/** Entries in a Map, bodies held as bytes, expiry on the injected clock. */
export class MemoryStore implements EntryStore {
  private readonly entries = new Map<string, { meta: StoredMeta; body: Uint8Array | null; expires: number }>();
  private readonly now: () => number;
  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  async get(key: string): Promise<StoredEntry | null> {
    const e = this.entries.get(key);
    if (!e) return null;
    if (e.expires <= this.now()) {
      this.entries.delete(key);
      return null;
    }
    const body = e.body;
    return {
      meta: structuredClone(e.meta),
      body: body === null ? null : new Response(body).body,
    };
  }

  async getRange(key: string, start: number, end: number): Promise<StoredEntry | null> {
    const e = this.entries.get(key);
    if (!e?.body || e.expires <= this.now() || end >= e.body.byteLength) return null;
    return { meta: structuredClone(e.meta), body: new Response(e.body.slice(start, end + 1)).body };
  }

  async put(key: string, meta: StoredMeta, body: ReadableStream<Uint8Array> | null, ttlSeconds: number) {
    const bytes = body ? new Uint8Array(await new Response(body).arrayBuffer()) : null;
    const length = expectedLength(meta);
    if (bytes && length !== undefined && bytes.byteLength !== length) throw new Error(`body of ${bytes.byteLength} bytes, ${length} announced`);
    this.entries.set(key, { meta: structuredClone(meta), body: bytes, expires: this.now() + ttlSeconds * 1000 });
  }

  async delete(key: string) {
    return this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
