/**
 * The edge worker's side of the store's own calls (POST, see src/contracts/store.ts) through its STORE service
 * binding: coalescing locks shared by every edge process of a box, and the store's stats for the metrics.
 */
import {
  CHANGED_HEADER,
  INVALIDATED_PATH,
  INVALIDATE_PATH,
  LOCKED_PATH,
  LOG_SEQ_HEADER,
  LOCK_PATH,
  RENEW_PATH,
  STATS_PATH,
  STORE_CALL_BASE,
  UNLOCK_PATH,
  cacheUrl,
  type Invalidations,
  type PeerInvalidations,
  type SharedLocks,
  type StoreStats,
} from "../contracts/store.ts";

function call(store: Fetcher, path: string, params: Record<string, string> = {}, body?: string): Promise<Response> {
  const q = new URLSearchParams(params).toString();
  return store.fetch(`${STORE_CALL_BASE}${path}${q ? `?${q}` : ""}`, { method: "POST", body });
}

/** Locks held in the store process; the tokens of the ones this isolate took stay here. */
export function storeLocks(store: Fetcher, ttlMs: number): SharedLocks {
  const tokens = new Map<string, string>();
  return {
    async acquire(key, since) {
      const params: Record<string, string> = { url: cacheUrl(key), ttl: String(Math.max(1, ttlMs)) };
      if (since !== undefined) params.since = String(since);
      const res = await call(store, LOCK_PATH, params);
      const token = await res.text();
      if (res.status !== 200) return "held";
      if (res.headers.has(CHANGED_HEADER)) return "changed";
      tokens.set(key, token);
      return "taken";
    },
    adopt(key, token) {
      tokens.set(key, token);
    },
    async release(key) {
      const token = tokens.get(key);
      if (token === undefined) return;
      tokens.delete(key);
      const res = await call(store, UNLOCK_PATH, { url: cacheUrl(key), token });
      await res.body?.cancel();
    },
    async renew(key) {
      const token = tokens.get(key);
      if (token === undefined) return;
      const res = await call(store, RENEW_PATH, { url: cacheUrl(key), token, ttl: String(Math.max(1, ttlMs)) });
      await res.body?.cancel();
    },
    async held(key) {
      const res = await call(store, LOCKED_PATH, { url: cacheUrl(key) });
      await res.body?.cancel();
      return res.status === 200;
    },
  };
}

/** The store's stats, or undefined when it cannot say. */
export async function storeStats(store: Fetcher): Promise<StoreStats | undefined> {
  try {
    const res = await call(store, STATS_PATH);
    if (!res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    return (await res.json()) as StoreStats;
  } catch {
    return undefined;
  }
}

/**
 * Client invalidations between the processes of a box, through the store's ring: `forget` drops a key from this
 * process's memory tier, `clear` the whole tier (when the ring no longer reaches back to the last poll, or is another
 * ring: the store restarted). Each read also hands `logSequence` the purge log's sequence the store answered with
 * (a memory-tier HIT reads the ring first, so it learns of another process's purge before it is judged).
 */
export function storePeers(
  store: Fetcher,
  tier: { forget(key: string): void; clear(): void },
  logSequence?: { see(value: string | null): void },
): PeerInvalidations {
  // Where this process is in the store's ring (none before the first read: then it forgets all, nothing at boot).
  let ring = "";
  let seq = -1;
  const read = async () => {
    const res = await call(store, INVALIDATED_PATH, { since: String(seq), ring });
    logSequence?.see(res.headers.get(LOG_SEQ_HEADER));
    if (res.status === 204) return; // nothing new since `seq` in ring `ring`
    if (!res.ok) return void (await res.body?.cancel());
    const got = (await res.json()) as Invalidations;
    if (got.reset) tier.clear();
    else for (const key of got.keys) tier.forget(key);
    ring = got.ring;
    seq = got.seq;
  };
  // Concurrent callers share reads: each waits for one that started after it called (see freshRead).
  const fresh = freshRead(read);
  return {
    async publish(keys) {
      if (!keys.length) return;
      const res = await call(store, INVALIDATE_PATH, {}, JSON.stringify(keys));
      await res.body?.cancel();
      if (!res.ok) throw new Error(`the store answered ${res.status} to invalidations`);
    },
    poll: fresh,
  };
}

/**
 * `read` shared by concurrent callers: a call resolves when a read that started after it ended (rejects when that
 * read failed). One read runs at a time; callers that arrive while one runs share the next, which the first of them
 * to wake starts and awaits itself: on workerd a read belongs to the request that started it, and a request that
 * ended no longer settles it. So a caller waits for another caller's read at most `patienceMs`, then reads itself.
 */
export function freshRead(read: () => Promise<void>, patienceMs = 1000): () => Promise<void> {
  let started = 0;
  let running: { n: number; done: Promise<void> } | undefined;
  const patience = (done: Promise<void>) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), patienceMs)));
    return Promise.race([done.then(() => "ok" as const), late]).finally(() => clearTimeout(timer));
  };
  return async () => {
    const after = started; // reads numbered above this started after the call
    for (;;) {
      const r = running;
      if (!r) break;
      if (r.n > after) {
        if ((await patience(r.done)) === "ok") return;
        break; // never settled for us: read ourselves
      }
      if ((await patience(r.done.catch(() => undefined))) === "late") break;
    }
    const n = ++started;
    const done = read().finally(() => {
      if (running?.n === n) running = undefined;
    });
    running = { n, done };
    return done;
  };
}
