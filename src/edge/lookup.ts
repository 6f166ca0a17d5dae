/**
 * Step "lookup": the stored entry for a request. The primary key holds either the response or a Vary marker naming
 * the request headers that pick a variant's key. Purges apply on the way out: hard → nothing, soft → stale.
 */
import type { EntryMeta } from "../cache/entry.ts";
import { variantKey, variantOf } from "../cache/key.ts";
import { controlGate, purgeEffect } from "../cache/purge.ts";
import type { StoredEntry } from "./store.ts";
import type { Engine, Lookup } from "./transaction.ts";

/**
 * A store that cannot answer (its process restarting) counts as having nothing: the origin answers meanwhile.
 * `lock`: when the store holds the box's locks, the read that finds nothing takes the storage key's lock too (one
 * round trip for a MISS's lookup and lock; `Lookup.lock` says what it did, the coalescing step adopts it).
 */
export async function lookup(e: Engine, key: string, headers: Headers, lock = false): Promise<Lookup> {
  const { mark, at } = e.coalescer.mark();
  const ask = () => (lock && e.coalescer.sharedLocks ? { ttlMs: e.edge.lock_timeout_ms } : undefined);
  const primaryLock = ask();
  const primary = await e.store.get(key, primaryLock).catch(() => null);
  if (!primary) return { storageKey: key, entry: null, mark, at, lock: primaryLock };
  if (primary.meta.kind === "entry") return { storageKey: key, entry: await afterPurges(e, primary), mark, at };
  await primary.body?.cancel();
  if (primary.meta.kind !== "vary") return { storageKey: key, entry: null, mark, at };
  const marker = primary.meta;
  const storageKey = variantKey(key, marker.id, variantOf(marker.fields, headers));
  const variantLock = ask();
  const variant = await e.store.get(storageKey, variantLock).catch(() => null);
  if (variant && variant.meta.kind !== "entry") {
    await variant.body?.cancel();
    return { storageKey, entry: null, marker, mark, at };
  }
  if (!variant) return { storageKey, entry: null, marker, mark, at, lock: variantLock };
  return { storageKey, entry: await afterPurges(e, variant), marker, mark, at };
}

/** The entry of a lookup that holds a response (not a marker), or null. */
export function storedResponse(found: Lookup): (StoredEntry & { meta: EntryMeta }) | null {
  return found.entry?.meta.kind === "entry" ? (found.entry as StoredEntry & { meta: EntryMeta }) : null;
}

/**
 * The entry as purges leave it: gone (hard), stale from now on (soft), or as it was. With a control plane, entries
 * stored before this box start are stale until the box caught up on the purges it missed, and every entry is while
 * the box's lease has run out (controlGate). The log applied is at least as new as what the store told of in the
 * answers that brought the entry (SharedLog.behind).
 */
async function afterPurges(e: Engine, entry: StoredEntry): Promise<StoredEntry | null> {
  const meta = entry.meta as EntryMeta;
  // Several processes: a store's answer told of a newer log than this copy (another process's purge); unreadable
  // now, the entry counts as not stored (the origin answers) rather than served past a purge.
  if (e.shared.behind && !(await e.shared.catchUp().then(() => true, () => false))) {
    await entry.body?.cancel();
    return null;
  }
  const log = e.shared.current;
  const effect = purgeEffect(log, meta, controlGate(log, e.boot, e.lease?.staleBefore(e.now())));
  if (effect === "hard") {
    await entry.body?.cancel();
    return null;
  }
  if (effect === "soft") return { meta: { ...meta, lifetime: 0, noCache: false }, body: entry.body };
  return entry;
}
