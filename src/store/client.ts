/**
 * The edge worker's side of the store's own calls (POST, see worker.ts) through its STORE service binding:
 * coalescing locks shared by every edge process of a box, and the store's stats for the metrics.
 */
import type { KeyLocks } from "../edge/engine.ts";
import type { StoreStats } from "./worker.ts";

const BASE = "http://store";

async function call(store: Fetcher, path: string, params: Record<string, string> = {}): Promise<Response> {
  const q = new URLSearchParams(params).toString();
  return store.fetch(`${BASE}${path}${q ? `?${q}` : ""}`, { method: "POST" });
}

/** Locks held in the store process; the tokens of the ones this isolate took stay here. */
export function storeLocks(store: Fetcher, ttlMs: number): KeyLocks {
  const tokens = new Map<string, string>();
  return {
    async acquire(key) {
      const res = await call(store, "/lock", { key, ttl: String(Math.max(1, ttlMs)) });
      const token = await res.text();
      if (res.status !== 200) return false;
      tokens.set(key, token);
      return true;
    },
    async release(key) {
      const token = tokens.get(key);
      if (token === undefined) return;
      tokens.delete(key);
      const res = await call(store, "/unlock", { key, token });
      await res.body?.cancel();
    },
    async held(key) {
      const res = await call(store, "/locked", { key });
      await res.body?.cancel();
      return res.status === 200;
    },
  };
}

/** The store's stats, or undefined when it cannot say. */
export async function storeStats(store: Fetcher): Promise<StoreStats | undefined> {
  try {
    const res = await call(store, "/stats");
    if (!res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    return (await res.json()) as StoreStats;
  } catch {
    return undefined;
  }
}
