/**
 * The hot tier: a bounded in-isolate memory copy of small entries, in front of another EntryStore (the Cache API).
 * Every Cache API call is a subrequest; a hit here is none. It keeps exactly what the store below keeps — the same
 * meta, the same physical lifetime — so the engine still judges freshness, variants and validators on every read;
 * puts and deletes go through to the store below and replace or evict the copy here.
 *
 * Beside the copies, places on disk: for an entry the store answered with a whole body it checked lately (`disk` on
 * the entry, DISK_REF_HEADER), the meta and the body's place in the store directory, until the store's stated time.
 * A hit then reads the body from the file itself through the edge's read-only disk binding: one native subrequest
 * whose body goes to the client untouched, instead of a call into the store process (a second request context, the
 * index, the head) before that same read. Held by count (`maxPlaces`), dropped like copies (put, delete, forget),
 * and given up when the file is gone (the store evicted or replaced it: files are never rewritten in place).
 *
 * Bounds: total bytes (bodies plus an estimate of the meta) and bytes per object; least recently used goes first,
 * nearly: a hit moves its copy to the newest end only when it is in the older half of the tier (a move is a Map delete
 * and set, which in a tier of tens of thousands of copies cost a tenth of a HIT when made on every one).
 */
import type { StoredMeta } from "../cache/entry.ts";
import { readBlock } from "../store/integrity.ts";
import type { DiskRef } from "../contracts/store.ts";
import type { EntryStore, LookupLock, StoredEntry } from "./store.ts";

export interface HotTierOptions {
  maxBytes: number;
  maxObjectBytes: number;
  now?: () => number;
  /**
   * Several processes share the store below: resolves once the changes other processes made there before the call
   * reached this tier (forget / clear). Awaited before a held copy is handed out, so a copy another process replaced
   * or deleted is never served after that process answered. Without it copies are trusted (one process).
   */
  confirm?: () => Promise<void>;
  /** The store directory, read-only (bare workerd's disk service): places on disk are kept only with it. */
  disk?: Fetcher;
  /** Places on disk held at most (see above); default 4096 (about 1.2 KB each, their metas). */
  maxPlaces?: number;
}

/** An entry's meta and where its checked body is on disk (see the module's comment). */
interface Place {
  meta: StoredMeta;
  disk: DiskRef;
  /** The earliest of the store's `until` and the entry's own physical lifetime here (ttlOf). */
  until: number;
}

interface Held {
  meta: StoredMeta;
  body: Uint8Array | null;
  /** What a hit hands out, made once (its stream only when read). */
  entry: StoredEntry;
  expires: number;
  bytes: number;
  /** Bumped on every put/delete of the key: a fill started before it must not land. */
  generation: number;
  /** `inserts` when it was last put at the newest end. */
  order: number;
}

export class HotTier implements EntryStore {
  private readonly inner: EntryStore;
  private readonly maxBytes: number;
  private readonly maxObjectBytes: number;
  private readonly now: () => number;
  /** See HotTierOptions.confirm; settable because the reader of the store's ring needs this tier first. */
  confirm: (() => Promise<void>) | undefined;
  private readonly held = new Map<string, Held>();
  private readonly places = new Map<string, Place>();
  private readonly disk: Fetcher | undefined;
  private readonly maxPlaces: number;
  /** Per key, bumped on every put/delete; bounded in keys and bytes (keys are URLs a client chooses). */
  private readonly generations = new Map<string, number>();
  private generationBytes = 0;
  /** Every key's generation is at least this: raised past all given out when the map is emptied. */
  private floor = 0;
  private lastGeneration = 0;
  private bytes = 0;
  /** Copies put at the newest end so far (held or moved): tells how far from that end a copy is, at most. */
  private inserts = 0;
  hits = 0;
  misses = 0;
  /** Hits read from a place on disk (not counted in hits). */
  diskHits = 0;

  constructor(inner: EntryStore, opts: HotTierOptions) {
    this.inner = inner;
    this.maxBytes = opts.maxBytes;
    this.maxObjectBytes = Math.min(opts.maxObjectBytes, opts.maxBytes);
    this.now = opts.now ?? Date.now;
    this.confirm = opts.confirm;
    this.disk = opts.disk;
    this.maxPlaces = opts.disk ? (opts.maxPlaces ?? 4096) : 0;
  }

  get totalBytes(): number {
    return this.bytes;
  }
  get size(): number {
    return this.held.size;
  }
  has(key: string): boolean {
    return this.held.has(key);
  }

  /** `lock` goes to the store below with a read this tier cannot answer (a copy here needs no lock). */
  async get(key: string, lock?: LookupLock): Promise<StoredEntry | null> {
    if (!cacheable(key)) return this.inner.get(key, lock);
    let h = this.held.get(key);
    if ((h || this.places.has(key)) && this.confirm) {
      // The store is unreachable: the copy is all there is (as before another process could have told us).
      await this.confirm().catch(() => undefined);
      h = this.held.get(key);
    }
    if (h) {
      if (h.expires > this.now()) {
        if (this.inserts - h.order > this.held.size >> 1) {
          this.held.delete(key);
          this.held.set(key, h);
          h.order = ++this.inserts;
        }
        this.hits++;
        // The held meta is deep-frozen and handed out as is (one entry object per copy): a copy per hit costs ~15%
        // of HIT throughput, and the engine builds new metas rather than changing the ones it reads (a change would
        // throw, not corrupt).
        return h.entry;
      }
      this.drop(key);
    }
    const gen = this.generation(key);
    const read = this.places.has(key) ? await this.readPlace(key, gen) : undefined;
    if (read) return read;
    this.misses++;
    const entry = await this.inner.get(key, lock);
    if (!entry) return null;
    if (!holdable(entry.meta)) return entry; // shared records (the purge log) are never held here
    if (entry.disk) this.place(key, entry.meta, entry.disk, gen);
    const size = entry.meta.kind === "entry" ? entry.meta.size : 0;
    if (entry.body && (size === undefined || size > this.maxObjectBytes)) return entry;
    // Small: read it once, keep a copy, hand out a stream of the copy.
    const body = entry.body ? await readAtMost(entry.body, this.maxObjectBytes, size) : null;
    if (entry.body && !body) return null; // the body failed or was not the size its meta said
    const ttl = ttlOf(entry.meta, this.now());
    if (ttl > 0) this.hold(key, entry.meta, body, this.now() + ttl, gen);
    return heldEntry(entry.meta, body);
  }

  /** The body from its place on disk, or undefined (the place is given up) when it is out of date or the file gone. */
  private async readPlace(key: string, gen: number): Promise<StoredEntry | undefined> {
    const p = this.places.get(key)!;
    if (p.until <= this.now()) {
      this.places.delete(key);
      return undefined;
    }
    const { file, offset, length } = p.disk;
    const res = await this.disk!.fetch(`http://disk/${file}`, { headers: { range: `bytes=${offset}-${offset + length - 1}` } }).catch(() => undefined);
    if (res?.status === 206 && res.body && res.headers.get("content-length") === String(length)) {
      this.diskHits++;
      return { meta: p.meta, body: res.body };
    }
    await res?.body?.cancel();
    if (this.generation(key) === gen && this.places.get(key) === p) this.places.delete(key);
    return undefined;
  }

  private place(key: string, meta: StoredMeta, disk: DiskRef, gen: number) {
    if (this.maxPlaces === 0 || meta.kind !== "entry" || this.generation(key) !== gen) return;
    const until = Math.min(disk.until, this.now() + ttlOf(meta, this.now()));
    if (until <= this.now()) return;
    this.places.delete(key);
    this.places.set(key, { meta: deepFreeze(structuredClone(meta)), disk, until });
    if (this.places.size > this.maxPlaces) this.places.delete(this.places.keys().next().value!);
  }

  async getRange(key: string, start: number, end: number): Promise<StoredEntry | null> {
    let h = this.held.get(key);
    if (h?.body && this.confirm) {
      await this.confirm().catch(() => undefined);
      h = this.held.get(key);
    }
    if (h?.body && h.expires > this.now() && end < h.body.byteLength) {
      return { meta: h.meta, body: bytesStream(h.body.subarray(start, end + 1)) };
    }
    return (await this.inner.getRange?.(key, start, end)) ?? null;
  }

  async put(key: string, meta: StoredMeta, body: ReadableStream<Uint8Array> | null, ttlSeconds: number): Promise<void> {
    const gen = this.bump(key);
    this.drop(key);
    const size = meta.kind === "entry" ? meta.size : 0;
    // The purge log is shared with the box's other processes: always read it from the store.
    if (!cacheable(key) || !holdable(meta)) return this.inner.put(key, meta, body, ttlSeconds);
    if (!body || (size !== undefined && size > this.maxObjectBytes) || this.maxBytes === 0) {
      await this.inner.put(key, meta, body, ttlSeconds);
      if (!body && this.maxBytes > 0) this.hold(key, meta, null, this.now() + ttlSeconds * 1000, gen);
      return;
    }
    // Tee: one branch to the store below, one collected here while it stays small.
    const [down, copy] = body.tee();
    const collected = readAtMost(copy, this.maxObjectBytes, size);
    await this.inner.put(key, meta, down, ttlSeconds);
    const bytes = await collected;
    if (bytes && (size === undefined || bytes.byteLength === size)) {
      this.hold(key, meta, bytes, this.now() + ttlSeconds * 1000, gen);
    }
  }

  /** Drops this tier's copy only (another process changed the store below). */
  forget(key: string) {
    this.bump(key);
    this.drop(key);
  }

  /** Drops every copy (told that more changed below than can be named). */
  clear() {
    for (const key of [...this.held.keys(), ...this.places.keys()]) this.forget(key);
  }

  async delete(key: string): Promise<boolean> {
    this.bump(key);
    this.drop(key);
    return this.inner.delete(key);
  }

  private hold(key: string, meta: StoredMeta, body: Uint8Array | null, expires: number, gen: number) {
    if (this.generation(key) !== gen) return;
    const bytes = (body?.byteLength ?? 0) + metaBytes(meta);
    if (bytes > this.maxObjectBytes + 4096 || bytes > this.maxBytes) return;
    this.drop(key);
    const frozen = deepFreeze(structuredClone(meta));
    this.held.set(key, { meta: frozen, body, entry: Object.freeze(heldEntry(frozen, body)), expires, bytes, generation: gen, order: ++this.inserts });
    this.bytes += bytes;
    for (const [k] of this.held) {
      if (this.bytes <= this.maxBytes) break;
      this.drop(k);
    }
  }

  private drop(key: string) {
    this.places.delete(key);
    const h = this.held.get(key);
    if (!h) return;
    this.held.delete(key);
    this.bytes -= h.bytes;
  }

  private generation(key: string): number {
    return this.generations.get(key) ?? this.floor;
  }

  private bump(key: string): number {
    if (this.generations.size >= 100_000 || this.generationBytes > 8 * 1024 * 1024) {
      // Emptied, not trimmed: the floor moves past every generation given out, so no fill started before lands.
      this.generations.clear();
      this.generationBytes = 0;
      this.floor = this.lastGeneration + 1;
    }
    if (!this.generations.has(key)) this.generationBytes += key.length * 2;
    const g = Math.max(this.generation(key), this.lastGeneration) + 1;
    this.lastGeneration = g;
    this.generations.set(key, g);
    return g;
  }
}

/**
 * Only responses and Vary markers are held. Records the engine shares through the store (the purge log: keys that
 * start with a control character, other meta kinds) always go to the store below, so every process sees the same.
 */
function cacheable(key: string): boolean {
  return key.charCodeAt(0) >= 0x20;
}
function holdable(meta: StoredMeta): boolean {
  return meta.kind === "entry" || meta.kind === "vary";
}

/**
 * Remaining physical lifetime (ms) of an entry read from below: the store below only returns live entries, so the
 * copy may live as long as the engine's own physical ttl would allow — bounded here by the freshness and stale
 * windows plus the keep window the engine used. Without that knowledge, a short default keeps the copy honest.
 */
function ttlOf(meta: StoredMeta, now: number): number {
  if (meta.kind !== "entry") return 60_000;
  const age = meta.initialAge * 1000 + Math.max(0, now - meta.responseTime);
  const window = (meta.lifetime + Math.max(meta.staleWhileRevalidate, meta.staleIfError)) * 1000;
  return Math.max(0, Math.min(window - age, 3_600_000));
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * What holding a meta costs in memory, besides the body: its strings (two bytes a character) and a fixed part for the
 * objects around them (the Map slot, the frozen meta, header pairs, the body's buffer), measured at about 1.2 KB per
 * held entry in V8 — so the tier's bound is close to what it really takes.
 */
function metaBytes(meta: StoredMeta): number {
  if (meta.kind !== "entry") return 600 + (meta.key?.length ?? 0) * 2;
  let n = 1200 + meta.key.length * 2;
  for (const [a, b] of meta.headers) n += (a.length + b.length) * 2;
  return n;
}

/** An entry whose body is in memory: `bytes` for who can use them, a stream made only when `body` is read. */
function heldEntry(meta: StoredMeta, bytes: Uint8Array | null): StoredEntry {
  if (bytes === null) return { meta, body: null };
  return {
    meta,
    bytes,
    get body() {
      return bytesStream(bytes);
    },
  };
}

function bytesStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new Response(bytes).body!;
}

/**
 * The whole stream as bytes when it ends within `max` bytes; null when longer or failing (the stream is cancelled).
 * With the length it should have (`expected`), in one native read where the runtime can (workerd's readAtLeast on a
 * byte stream), not a JavaScript step per network chunk; fewer bytes when it ends short (the caller checks).
 */
async function readAtMost(stream: ReadableStream<Uint8Array>, max: number, expected?: number): Promise<Uint8Array | null> {
  if (expected !== undefined && expected <= max) {
    let byob: ReadableStreamBYOBReader | undefined;
    try {
      byob = stream.getReader({ mode: "byob" });
    } catch {
      byob = undefined; // not a byte stream: chunk by chunk below
    }
    if (byob) {
      try {
        // Exactly the expected bytes, then one more read that must find the end (a longer body shows). Kept as a
        // copy: answers made from the buffer the reads filled cost a 100 KB HIT about a third more (measured).
        const bytes = await readBlock(byob, expected);
        if (bytes.byteLength < expected || (await readBlock(byob, 1)).byteLength === 0) return bytes.slice();
        await byob.cancel().catch(() => undefined);
      } catch {
        // failed
      }
      return null;
    }
  }
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.byteLength;
      if (n > max) {
        await reader.cancel().catch(() => undefined);
        return null;
      }
      chunks.push(value);
    }
  } catch {
    return null;
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}
