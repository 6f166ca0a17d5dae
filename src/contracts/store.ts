/**
 * The edge ↔ store contract on bare workerd. The store process (src/store/worker.ts) is the edge's
 * `cacheApiOutbound`, so entries travel through the standard Cache API (workerd's cache protocol: GET with
 * `Cache-Control: only-if-cached` = match, PUT = store, PURGE = delete). Beside it the edge reaches the same worker
 * through its STORE service binding with a lookup that also locks, and POST calls that are not part of the cache protocol:
 *
 *   GET U + `x-parrot-lock: MS`  → a lookup that takes the coalescing lock of U (for MS) when it finds nothing: the
 *                                  504 MISS carries `x-parrot-lock-token: T` (now the caller's) or `x-parrot-lock:
 *                                  held` (another request holds it) or `changed` (stored while it looked: look
 *                                  again). One round trip for lookup and lock (a MISS on a box with several
 *                                  processes); the PUT of U releases the lock as usual
 *
 *   /lock?url=U&ttl=MS[&since=T] → 200 + token: the coalescing lock of cache URL U is now the caller's;
 *                                  409: another request holds it;
 *                                  200 + `x-parrot-changed: 1`, no token: U was stored after T (ms) — look again
 *   /unlock?url=U&token=T        → 200 (only the holder's token releases; a PUT of U releases it too)
 *   /locked?url=U                → 200 held, 404 free
 *   /stats                       → StoreStats as JSON
 *   /invalidate  (body: JSON list of storage keys) → 204: keys invalidated by a client request in one process,
 *                                  for the other processes' memory tiers (a bounded ring, never on disk); the store
 *                                  adds every key whose entry a PUT replaced or a PURGE deleted to the same ring
 *   /invalidated?since=SEQ&ring=ID → Invalidations as JSON: the keys after SEQ, or `reset` when the ring no longer
 *                                  reaches back that far or is not ring ID (the store process restarted): the
 *                                  caller then forgets its whole memory tier; 204 when nothing came after SEQ
 *
 * and the host (Node) hands the store worker its settings and the index it recovered from the directory.
 *
 * A HIT of a whole body whose blocks the store checked lately carries `x-parrot-disk: FILE OFFSET LENGTH UNTIL`
 * (DISK_REF_HEADER): the body is bytes OFFSET.. (LENGTH of them) of FILE in the store directory, and until UNTIL (ms)
 * the edge may read them there itself (its read-only disk binding) instead of asking the store again. Files are never
 * rewritten in place (a new write of a key is a new file), so such a read finds these bytes or no file.
 *
 * Every match answer and every /invalidated answer carries `x-parrot-log-seq: ID.N` (LOG_SEQ_HEADER): N counts the
 * stores of the box's purge log (PURGE_LOG_KEY) this store process (ID) made visible so far, so an edge process that
 * gets an answer knows whether its copy of the log may be older than what is stored (see SharedLog.behind).
 */

/** Where an entry of `key` lives in the runtime's Cache API: one URL per storage key. */
export function cacheUrl(key: string): string {
  return `https://parrot-cdn.cache/${encodeURIComponent(key)}`;
}

export const STORE_CALL_BASE = "http://store";
export const LOCK_PATH = "/lock";
export const UNLOCK_PATH = "/unlock";
export const RENEW_PATH = "/renew";
export const LOCKED_PATH = "/locked";
export const STATS_PATH = "/stats";
export const INVALIDATE_PATH = "/invalidate";
export const INVALIDATED_PATH = "/invalidated";
/** The storage key of the box's shared purge log (no request key can start with a control character). */
export const PURGE_LOG_KEY = "\u0001purge-log";
/** On the store's answers: `ID.N`, the store process and how many purge-log stores it made visible (see above). */
export const LOG_SEQ_HEADER = "x-parrot-log-seq";
/** Set on a /lock answer when the entry was stored after `since`: the caller should look it up again. */
export const CHANGED_HEADER = "x-parrot-changed";
/** On a lookup (GET): take the lock (ttl in ms) when nothing is stored; on its 504: `held` when another holds it. */
export const LOCK_HEADER = "x-parrot-lock";
/** On a lookup's 504: the token of the lock it took. */
export const LOCK_TOKEN_HEADER = "x-parrot-lock-token";

/** On a whole-body HIT: where its checked bytes are on disk, and until when they count as checked (see above). */
export const DISK_REF_HEADER = "x-parrot-disk";

/** A whole body's place in the store directory, readable by the edge itself until `until` (ms). */
export interface DiskRef {
  file: string;
  offset: number;
  length: number;
  until: number;
}

export function formatDiskRef(ref: DiskRef): string {
  return `${ref.file} ${ref.offset} ${ref.length} ${Math.floor(ref.until)}`;
}

/** DISK_REF_HEADER's value, or undefined when absent or not one the store writes (a file name is `xx/<hash>-<id>`). */
export function parseDiskRef(value: string | null): DiskRef | undefined {
  const m = value === null ? null : /^([0-9a-f]{2}\/[0-9a-f]{32}-[0-9a-z]+) (\d+) (\d+) (\d+)$/.exec(value);
  return m ? { file: m[1]!, offset: Number(m[2]), length: Number(m[3]), until: Number(m[4]) } : undefined;
}

/** The store's bounds, from [edge] (store_max_bytes, store_max_entries, store_inactive). */
export interface StoreSettings {
  /** Bytes the files may take. */
  maxBytes: number;
  /** Entries the index may hold (each costs memory: many small objects must not outgrow the box's RAM). */
  maxEntries?: number;
  /** Entries unused this long (seconds) are deleted. */
  inactiveSeconds: number;
  /** Seconds between saves of the use order. */
  saveEverySeconds?: number;
  /** Seconds a body block that matched its digest is served natively before a read checks it again (default 600). */
  recheckSeconds?: number;
}

/**
 * One recovered entry, as the host's scan hands it to the store worker:
 * [hash, file, headLen, bodyLen, expires, written, lastAccess, headHash], oldest use first.
 */
export type IndexRow = [string, string, number, number, number, number, number, string];

/**
 * What /invalidated answers: the newest sequence number and the keys after `since` (or `reset: true`). `ring` names
 * this store process's ring: a caller that read another one (the store restarted) is answered `reset`.
 */
export interface Invalidations {
  ring: string;
  seq: number;
  keys: string[];
  reset?: boolean;
}

/** What /stats answers. */
export interface StoreStats {
  bytes: number;
  entries: number;
  maxBytes: number;
  /** The entry bound (store_max_entries); absent: none. */
  maxEntries?: number;
  evictions: { lru: number; inactive: number; expired: number };
  locks: number;
  /** Entries dropped because a digest did not match (a flipped bit on disk): never served. */
  corrupt: number;
  /** Calls the store answered since it started, by kind (match, lookup-lock, put, purge, the POST paths without `/`). */
  calls?: Record<string, number>;
  /**
   * How HIT bodies left the store: `native` answers returned the disk service's body untouched (no JavaScript on
   * their bytes), `checked` answers were read block by block in JavaScript and checked against their digests (a
   * block's first read, or its recheck). Bytes: body bytes asked of the disk on each path (a native body dropped
   * unread counts whole: workerd reads only what it pumped), and heads read.
   */
  reads?: ReadStats;
}

export interface ReadStats {
  native: number;
  nativeBytes: number;
  checked: number;
  checkedBytes: number;
  headBytes: number;
}

/**
 * Coalescing locks shared by the edge processes of a box (held by the store process). The engine asks before it
 * goes to the origin for a key that it found missing or stale.
 */
export interface SharedLocks {
  /**
   * Takes the lock of storage key `key` unless another request holds it ("held"). With `since`, answers "changed"
   * (and takes nothing) when the entry under `key` was stored after that time: it is worth looking at again.
   */
  acquire(key: string, since?: number): Promise<"taken" | "held" | "changed">;
  /** Holds a lock a lookup took with `token` (GET + LOCK_HEADER) as if acquire() had taken it. */
  adopt(key: string, token: string): void;
  /** Releases a lock this isolate took (a store of the key released it already: then nothing happens). */
  release(key: string): Promise<void>;
  /** Extends a lock this isolate holds by its time to live again: its fetch is still making progress. */
  renew(key: string): Promise<void>;
  held(key: string): Promise<boolean>;
}

/**
 * Invalidations by client requests (RFC 9111 §4.4) between the processes of one box: they delete the stored entry
 * at once, and only the other processes' memory tiers need to hear of them. Never written to the shared purge log.
 */
export interface PeerInvalidations {
  /** Tells the box's other processes that these storage keys changed. */
  publish(keys: string[]): Promise<void>;
  /**
   * Applies what the other processes published, and the keys the store replaced or deleted, to this process's
   * memory tier: everything up to a read of the ring that started after the call.
   */
  poll(): Promise<void>;
}
