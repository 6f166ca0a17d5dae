/**
 * Step "lookup": the stored entry for a request. The primary key holds either the response or a Vary marker naming
 * the request headers that pick a variant's key. Purges apply on the way out: hard → nothing, soft → stale. Also the
 * write under the same scheme (putResponse), which the whole-object and the slice steps share.
 */
import type { EntryMeta } from "../cache/entry.ts";
import { variantKey, variantOf } from "../cache/key.ts";
import { controlGate, purgeEffect } from "../cache/purge.ts";
import type { StoredEntry } from "./store.ts";
import type { Engine, Lookup, Transaction } from "./transaction.ts";

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
 * Stores a new response (or a sliced object's record, without a body), under a Vary marker when it varies (the
 * variant first, so a waiter woken by the marker finds both). Resolves to the keys written, the entry's first.
 */
export async function putResponse(
  e: Engine,
  tx: Transaction,
  meta: EntryMeta,
  fields: string[],
  body: ReadableStream<Uint8Array> | null,
  ttl: number,
): Promise<string[]> {
  const key = meta.key;
  if (fields.length === 0) {
    await e.store.put(key, meta, body, ttl);
    return [key];
  }
  let marker = tx.found.marker;
  if (!marker || marker.fields.join() !== fields.join()) {
    marker = { kind: "vary", key, fields, id: crypto.randomUUID().slice(0, 8) };
  }
  const variant = variantOf(fields, tx.request.headers);
  const storageKey = variantKey(key, marker.id, variant);
  await e.store.put(storageKey, { ...meta, vary: variant }, body, ttl);
  await e.store.put(key, marker, null, Math.max(ttl, e.edge.keep, 3600));
  return [storageKey, key];
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
