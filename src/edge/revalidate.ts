/**
 * Step "revalidate": a stored entry that may not be reused as it is goes to the origin, conditionally when it has
 * validators. 304 → REVALIDATED (stored headers merged, RFC 9111 §3.2 / §4.3.4); a full answer replaces the entry
 * (EXPIRED); a failure answers STALE when stale-if-error allows. Also the background refresh that
 * stale-while-revalidate starts.
 */
import { currentAgeOf, entryHeaders, type EntryMeta } from "../cache/entry.ts";
import { headerPairs, mergeNotModified } from "../cache/headers.ts";
import { decideRefreshed, isOriginError, physicalTtl, staleIfErrorAllows } from "../cache/policy.ts";
import { fromEntry, originFailure } from "./deliver.ts";
import { storeResponse } from "./fetch-store.ts";
import { originGet } from "./origin-get.ts";
import type { StoredEntry } from "./store.ts";
import { dropBody, release, type Engine, type Outcome, type Transaction } from "./transaction.ts";

type RefreshResult =
  | { kind: "not-modified"; headers: Headers; requestTime: number; responseTime: number }
  | { kind: "full"; response: Response; requestTime: number }
  | { kind: "error"; response?: Response; error?: unknown; requestTime: number };

/** Goes to the origin for `entry`; `forced` when the client asked for it (no-cache, max-age, min-fresh). */
export async function revalidate(
  e: Engine,
  tx: Transaction,
  entry: StoredEntry & { meta: EntryMeta },
  forced: boolean,
  ttl: number,
): Promise<Outcome> {
  tx.claim ??= e.coalescer.local(tx.found.storageKey);
  let result: RefreshResult;
  try {
    result = await conditionalFetch(e, tx, entry.meta);
  } catch (err) {
    release(tx);
    throw err;
  }
  if (result.kind === "not-modified") {
    const updated = updatedEntry(e, tx, entry.meta, result);
    let served: StoredEntry = entry;
    // Stored before the answer leaves: the box's other processes then see the update from their next request on
    // (their memory tiers read the store's ring first), as this one does.
    if (updated) {
      // The body is stored again from a fresh read: workerd cannot pipe a tee of a cached body into the cache.
      await restore(e, tx.found.storageKey, updated).finally(() => release(tx));
      served = { meta: updated, body: entry.body };
    } else {
      await e.store.delete(tx.found.storageKey).catch(() => undefined).finally(() => release(tx));
      const headers = headerPairs(mergeNotModified(entryHeaders(entry.meta), result.headers));
      served = { meta: { ...entry.meta, headers }, body: entry.body };
    }
    return fromEntry(e, served, "REVALIDATED", { fwd: forced ? "request" : "stale", fwdStatus: 304, stored: true });
  }
  if (result.kind === "error" && staleIfErrorAllows(entry.meta, e.now())) {
    release(tx);
    await result.response?.body?.cancel();
    return fromEntry(e, entry, "STALE", {
      fwd: "stale",
      fwdStatus: result.response?.status ?? 504,
      ttl,
      detail: "stale-if-error",
    });
  }
  await entry.body?.cancel();
  if (result.kind === "error" && !result.response) {
    release(tx);
    return originFailure(result.error, forced ? "BYPASS" : "EXPIRED");
  }
  // A full response (or an origin error answer): it replaces the entry when it may be stored.
  return storeResponse(e, tx, result.response!, result.requestTime, forced ? "BYPASS" : "EXPIRED", {
    fwd: forced ? "request" : "stale",
    fwdStatus: result.response!.status,
  });
}

/**
 * The background refresh of stale-while-revalidate: updates or replaces the entry, leaves it on failure. `tx`
 * holds the lock of the entry's key until the refresh ends.
 */
export async function refresh(e: Engine, tx: Transaction, meta: EntryMeta): Promise<void> {
  try {
    const result = await conditionalFetch(e, tx, meta);
    if (result.kind === "not-modified") {
      const updated = updatedEntry(e, tx, meta, result);
      if (updated) await restore(e, tx.found.storageKey, updated);
      else await e.store.delete(tx.found.storageKey).catch(() => undefined);
    } else if (result.kind === "full") {
      const outcome = await storeResponse(e, tx, result.response, result.requestTime, "EXPIRED", {});
      await dropBody(outcome);
      await outcome.stored;
    } else {
      await result.response?.body?.cancel();
    }
  } finally {
    release(tx);
  }
}

/** The origin's answer to a conditional request built from the stored validators. */
async function conditionalFetch(e: Engine, tx: Transaction, meta: EntryMeta): Promise<RefreshResult> {
  const headers: Record<string, string> = {};
  if (meta.etag) headers["if-none-match"] = meta.etag;
  if (meta.lastModified) headers["if-modified-since"] = meta.lastModified;
  const requestTime = e.now();
  let response: Response;
  try {
    response = await originGet(e, tx, headers);
  } catch (error) {
    return { kind: "error", error, requestTime };
  }
  if (response.status === 304 && (meta.etag || meta.lastModified)) {
    await response.body?.cancel();
    return { kind: "not-modified", headers: response.headers, requestTime, responseTime: e.now() };
  }
  if (isOriginError(response.status)) return { kind: "error", response, requestTime };
  return { kind: "full", response, requestTime };
}

/**
 * RFC 9111 §3.2/§4.3.4: a 304 refreshes the stored headers and the freshness clock. `undefined` when the updated
 * headers no longer allow storing (the entry is then dropped after this answer).
 */
function updatedEntry(
  e: Engine,
  tx: Transaction,
  meta: EntryMeta,
  r: { headers: Headers; requestTime: number; responseTime: number },
): EntryMeta | undefined {
  const decision = decideRefreshed(meta, r, tx.rule, e.edge);
  if (!decision.store) return undefined;
  return { ...decision.meta, vary: meta.vary, size: meta.size ?? decision.meta.size };
}

/** Rewrites an entry in place with new metadata (after a 304): the body is read again from the store. */
async function restore(e: Engine, storageKey: string, meta: EntryMeta) {
  const current = await e.store.get(storageKey).catch(() => null);
  if (current?.meta.kind !== "entry") return void (await current?.body?.cancel());
  const fresh = meta.noCache ? 0 : Math.max(0, meta.lifetime - currentAgeOf(meta, e.now()));
  const ttl = physicalTtl(fresh, Math.max(meta.staleWhileRevalidate, meta.staleIfError), e.edge.keep);
  await e.store.put(storageKey, meta, current.body, ttl).catch(() => undefined);
}
