/**
 * Step "slices": large objects fetched and stored in aligned slices (nginx's slice module, ATS's slice plugin), so
 * a Range costs the origin the slices it covers, once, and an object of any size is cached.
 *
 * One entry (`slices`), one exit (`SliceExit`): the engine hands a request here once it may be a large object (a
 * miss with slicing on for its rule) or is one (a stored object record), and follows the exit. The step never calls
 * the whole-object step; an object that turns out whole leaves with the origin's response for the engine to store.
 *
 *   miss ── probe: GET with Range for one slice (the one a Range starts in, else the first)
 *           ├─ 206 covering the whole object, 200 (Range ignored), other statuses ── exit "store whole"
 *           ├─ a full GET of an object up to slice_threshold_bytes ── the rest fetched (If-Range) ── exit "store whole"
 *           ├─ a probe that tells nothing usable (416 of an empty object, another range) ── exit "fetch whole"
 *           ├─ 206 of part of an object with a strong ETag or Last-Modified ── object record + the slices it brought
 *           └─ 206 that cannot be stored or sliced ── the client's own request passed through, unstored
 *   record ── judged like any entry (HIT / STALE / UPDATING / revalidated with a `Range: bytes=0-0` conditional;
 *             another version at the origin deletes the record ── exit "miss": the request starts over)
 *           └─ the answer reads its slices (slice-reader.ts): missing ones come from the origin, one request per slice
 *
 * The answer's first slice is opened before the status is decided: HIT when it was stored, MISS with Cache-Status
 * `fwd=partial` when it came from the origin. Conditionals (304), HEAD, 416, If-Range and ranges are answered from
 * the record by deliver.ts, which reads bytes through the Outcome's `readRange`.
 */
import { currentAgeOf, entryHeaders, type EntryMeta, type SlicedObject } from "../cache/entry.ts";
import { endToEnd, headerPairs, mergeNotModified, setHeader } from "../cache/headers.ts";
import { decideRefreshed, decideStorage, isOriginError, staleIfErrorAllows, type Verdict } from "../cache/policy.ts";
import { conditionMatches } from "../cache/rules.ts";
import {
  canSlice,
  firstWantedByte,
  neededBytes,
  parseContentRange,
  sameVersion,
  sliceCount,
  sliceKey,
  sliceOf,
  sliceSpan,
  validatorsOf,
  versionId,
  type SliceSettings,
} from "../cache/slices.ts";
import type { CacheStatusParams, XCacheStatus } from "../cache/status.ts";
import { gatewayTimeout, originFailure } from "./deliver.ts";
import { putResponse } from "./lookup.ts";
import { originGet } from "./origin-get.ts";
import { idleLimited } from "./idle.ts";
import { lengthStream } from "./length-stream.ts";
import { SliceReader, VersionChanged, type SlicedRecord } from "./slice-reader.ts";
import type { EntryStore, StoredEntry } from "./store.ts";
import { NULL_BODY_STATUS, release, type Engine, type Outcome, type Transaction } from "./transaction.ts";

/** A sliced object's record as the store hands it out. */
export type SlicedEntry = StoredEntry & { meta: EntryMeta & { sliced: SlicedObject } };

/** Whether a stored entry is a sliced object's record. */
export function isSliced(entry: StoredEntry): entry is SlicedEntry {
  return entry.meta.kind === "entry" && entry.meta.sliced !== undefined;
}

/** The labels a request carries (X-Cache-Status, Cache-Status) into the step that follows. */
interface Labels {
  status: XCacheStatus;
  cacheStatus: CacheStatusParams;
}

/** Where the slice step starts: nothing stored and slicing on for the rule, or a stored record the route judged. */
export type SliceStart = ({ at: "miss"; settings: SliceSettings } & Labels) | { at: "record"; entry: SlicedEntry; verdict: Verdict };

/**
 * Where the request goes from the slice step: the answer, to deliver (from slices, the origin's own passed through,
 * or a failure); the whole object, to store as one entry (the origin's response, or fetched anew); or, from a record
 * whose object changed at the origin, a miss anew (whose exit is never "miss": a request passes the step at most
 * twice). The request's coalescing lock goes with it.
 */
export type SliceExit =
  | { to: "deliver"; outcome: Outcome }
  | ({ to: "store whole"; response: Response; requestTime: number } & Labels)
  | ({ to: "fetch whole" } & Labels)
  | ({ to: "miss" } & Labels);

/** The slice step (see the module comment). */
export function slices(e: Engine, tx: Transaction, start: SliceStart): Promise<SliceExit> {
  return start.at === "miss" ? probe(e, tx, start.settings, start) : answerRecord(e, tx, start.entry, start.verdict);
}

const deliverIt = (outcome: Outcome): SliceExit => ({ to: "deliver", outcome });

/**
 * Nothing stored for a GET/HEAD: asks the origin for the part of the object that tells its size (see the module
 * comment); stores it in slices, or leaves it to be stored whole.
 */
async function probe(e: Engine, tx: Transaction, settings: SliceSettings, labels: Labels): Promise<SliceExit> {
  const { request } = tx;
  const { status, cacheStatus } = labels;
  const { sliceBytes } = settings;
  const ranged = request.method === "GET" && request.headers.has("range");
  const first = ranged ? sliceOf(firstWantedByte(request.headers), sliceBytes) : 0;
  const asked = { start: first * sliceBytes, end: (first + 1) * sliceBytes - 1 };

  tx.claim ??= e.coalescer.local(tx.found.storageKey);
  const requestTime = e.now();
  let res: Response;
  try {
    // Not idle-limited here: a whole answer's body stays the runtime's own stream (teed natively to the client and
    // the store, its length known); only a slice, which holds a renewed lock while it is stored, is (below).
    res = await originGet(e, tx, { range: `bytes=${asked.start}-${asked.end}` });
  } catch (error) {
    release(tx);
    return deliverIt(originFailure(error, status, cacheStatus));
  }
  const fetchWhole: SliceExit = { to: "fetch whole", ...labels };
  const storeWhole = (response: Response): SliceExit => ({ to: "store whole", response, requestTime, ...labels });
  if (res.status === 416) {
    await res.body?.cancel();
    if (first === 0) return fetchWhole; // an empty object
    release(tx);
    return deliverIt(await passThrough(e, tx, status, cacheStatus)); // the client asked beyond the end: the origin answers it
  }
  // A 200 (the origin ignores Range) or any other status is a whole response, stored as such when it may be.
  if (res.status !== 206) return storeWhole(res);

  const cr = parseContentRange(res.headers.get("content-range"));
  const coded = (res.headers.get("content-encoding") ?? "identity").toLowerCase() !== "identity";
  if (!cr || "unsatisfied" in cr || cr.start !== asked.start || cr.end !== Math.min(asked.end, cr.total - 1) || coded || !res.body) {
    await res.body?.cancel(); // not the range asked for: take the whole response instead
    return fetchWhole;
  }
  if (cr.start === 0 && cr.end === cr.total - 1) return storeWhole(whole(res, res.body, cr.total));
  // A whole request for an object up to the threshold: stored whole, the probe's slice and the rest as one entry.
  if (!ranged && cr.total <= settings.thresholdBytes) return stitched(e, tx, res, cr.end + 1, cr.total, requestTime, labels);

  // Part of a larger object: its record, then the slice this response brought.
  const decision = canSlice(res.headers) ? recordDecision(e, tx, res.headers, requestTime, cr.total, sliceBytes) : undefined;
  if (!decision) {
    await res.body.cancel();
    release(tx);
    return deliverIt(await passThrough(e, tx, status, cacheStatus));
  }
  const keys = await putResponse(e, tx, decision.meta, decision.varyFields, null, decision.physicalTtl).catch(() => null);
  if (!keys) {
    await res.body.cancel();
    release(tx);
    return deliverIt(await passThrough(e, tx, status, cacheStatus));
  }
  // Slices live under the record's storage key (its variant's, when the object varies).
  const rec: SlicedRecord = { storageKey: keys[0]!, meta: decision.meta };
  const reader = new SliceReader(e, tx, rec);
  // The probe's slice is claimed before the key's lock goes: the requests that waited for it wait for the slice.
  const storeProbe = await reader.claimSlice(first);
  release(tx); // explicitly: workerd's cache.put resolves when the store refuses
  storeProbe(idleLimited(res.body, e.edge.origin_idle_timeout_ms));
  try {
    return deliverIt(await answer(e, tx, reader, rec, status, { ...cacheStatus, stored: true }, 0));
  } catch (error) {
    return deliverIt(originFailure(error, status, cacheStatus));
  }
}

/**
 * The probe held the first slice of an object small enough to be stored whole: the rest is asked for with If-Range
 * (a new version comes whole instead) and both bodies make one response, to be stored whole. Origin bytes: the
 * object, once.
 */
async function stitched(
  e: Engine,
  tx: Transaction,
  probe: Response,
  from: number,
  total: number,
  requestTime: number,
  labels: Labels,
): Promise<SliceExit> {
  const probeBody = probe.body!;
  const v = validatorsOf(probe.headers);
  const validator = v.etag ?? v.lastModified;
  if (!validator) {
    await probeBody.cancel(); // without a validator the two parts could be of two versions
    return { to: "fetch whole", ...labels };
  }
  let rest: Response;
  try {
    rest = await originGet(e, tx, { range: `bytes=${from}-`, "if-range": validator });
  } catch (error) {
    await probeBody.cancel();
    release(tx);
    return deliverIt(originFailure(error, labels.status, labels.cacheStatus));
  }
  if (rest.status === 200) {
    await probeBody.cancel(); // another version, sent whole
    return { to: "store whole", response: rest, requestTime, ...labels };
  }
  const cr = rest.status === 206 ? parseContentRange(rest.headers.get("content-range")) : null;
  const fits = cr && !("unsatisfied" in cr) && cr.start === from && cr.end === total - 1 && rest.body;
  if (!fits || !sameVersion({ ...v, total }, { ...validatorsOf(rest.headers), total: cr.total })) {
    await Promise.all([probeBody.cancel(), rest.body?.cancel()]);
    return { to: "fetch whole", ...labels };
  }
  return { to: "store whole", response: whole(probe, concat(tx, [probeBody, rest.body!], total), total), requestTime, ...labels };
}

/**
 * A stored object record, judged (`verdict`) by the route like any entry: answers from its slices, revalidating the
 * record first when it must be. The route holds the record's coalescing lock when it is to be revalidated.
 */
async function answerRecord(e: Engine, tx: Transaction, entry: SlicedEntry, verdict: Verdict): Promise<SliceExit> {
  await entry.body?.cancel();
  const rec: SlicedRecord = { storageKey: tx.found.storageKey, meta: entry.meta };
  switch (verdict.use) {
    case "fresh":
      return serve(e, tx, rec, "HIT", { hit: true, ttl: verdict.ttl, collapsed: tx.collapsed });
    case "stale-ok":
      return serve(e, tx, rec, "STALE", { hit: true, ttl: verdict.ttl, detail: "max-stale" });
    case "stale-while-revalidate": {
      const claim = await e.coalescer.claim(rec.storageKey, tx.found, tx.ctx.waitUntil.bind(tx.ctx));
      if (typeof claim !== "object") return serve(e, tx, rec, "UPDATING", { hit: true, ttl: verdict.ttl, detail: "updating" });
      tx.ctx.waitUntil(refreshRecord(e, { ...tx, claim }, rec));
      return serve(e, tx, rec, "STALE", { hit: true, ttl: verdict.ttl, detail: "updating" });
    }
    case "revalidate":
      if (tx.reqCC.has("only-if-cached")) {
        release(tx);
        return deliverIt(gatewayTimeout("only-if-cached and the stored response is stale"));
      }
      return revalidateRecord(e, tx, rec, verdict.forced, verdict.ttl);
  }
}

/** Deletes every slice of a stored record (a hard purge of its URL); the record itself is the caller's. */
export async function deleteSlices(store: EntryStore, storageKey: string, object: SlicedObject): Promise<void> {
  const count = sliceCount(object.total, object.sliceBytes);
  let next = 0;
  const worker = async () => {
    while (next < count) await store.delete(sliceKey(storageKey, object.version, next++)).catch(() => false);
  };
  await Promise.all(Array.from({ length: Math.min(8, count) }, worker));
}

/** Answers from a record's slices; another version found at the origin on the first slice starts over as a miss. */
async function serve(e: Engine, tx: Transaction, rec: SlicedRecord, status: XCacheStatus, cacheStatus: CacheStatusParams): Promise<SliceExit> {
  try {
    return deliverIt(await answer(e, tx, new SliceReader(e, tx, rec), rec, status, cacheStatus, currentAgeOf(rec.meta, e.now())));
  } catch (error) {
    if (error instanceof VersionChanged) return { to: "miss", status: status === "BYPASS" ? "BYPASS" : "EXPIRED", cacheStatus: { fwd: "stale" } };
    return deliverIt(originFailure(error, "MISS", { fwd: "partial" })); // the record was there, its first slice could not be had
  }
}

/** The Outcome for a sliced object: headers from the record, bytes through `readRange` (deliver.ts asks for them). */
async function answer(
  e: Engine,
  tx: Transaction,
  reader: SliceReader,
  rec: SlicedRecord,
  status: XCacheStatus,
  cacheStatus: CacheStatusParams,
  age: number,
): Promise<Outcome> {
  const { total, sliceBytes } = rec.meta.sliced;
  const headers = rec.meta.headers.slice(); // a copy: stored metas are shared
  setHeader(headers, "content-length", String(total));
  const needed = neededBytes(tx.request.method, tx.request.headers, headers, total);
  const firstRange = needed.kind === "span" ? needed : needed.kind === "ranges" ? needed.ranges[0]! : undefined;
  if (firstRange) {
    const index = sliceOf(firstRange.start, sliceBytes);
    await reader.openFirst(index, firstRange.start, Math.min(firstRange.end, sliceSpan(index, sliceBytes, total).end));
  }
  if (reader.fetched && status === "HIT") {
    status = "MISS";
    cacheStatus = { fwd: "partial", stored: true, collapsed: cacheStatus.collapsed };
  } else if (reader.fetched && !cacheStatus.fwd) cacheStatus = { ...cacheStatus, fwd: "partial" };
  return {
    status: 200,
    statusText: rec.meta.statusText,
    headers,
    body: null,
    xcs: status,
    cacheStatus,
    age,
    size: total,
    readRange: async (start, end) => reader.stream(start, end),
  };
}

/** Revalidates a record: same version → REVALIDATED (meta refreshed); another → EXPIRED, a miss anew. */
async function revalidateRecord(e: Engine, tx: Transaction, rec: SlicedRecord, forced: boolean, ttl: number): Promise<SliceExit> {
  tx.claim ??= e.coalescer.local(rec.storageKey);
  const check = await checkRecord(e, tx, rec.meta);
  if (check.kind === "same") {
    const updated = updatedRecord(e, tx, rec.meta, check);
    if (updated) {
      await e.store.put(rec.storageKey, updated.meta, null, updated.ttl).catch(() => undefined);
      release(tx);
    } else {
      await e.store.delete(rec.storageKey).catch(() => false);
      release(tx);
    }
    const meta = { ...rec.meta, headers: headerPairs(mergeNotModified(entryHeaders(rec.meta), check.headers)) };
    return serve(e, tx, { storageKey: rec.storageKey, meta: updated?.meta ?? meta }, "REVALIDATED", {
      fwd: forced ? "request" : "stale",
      fwdStatus: 304,
      stored: !!updated,
    });
  }
  if (check.kind === "error") {
    if (staleIfErrorAllows(rec.meta, e.now())) {
      release(tx);
      await check.response?.body?.cancel();
      return serve(e, tx, rec, "STALE", { fwd: "stale", fwdStatus: check.response?.status ?? 504, ttl, detail: "stale-if-error" });
    }
    release(tx);
    if (!check.response) return deliverIt(originFailure(check.error, forced ? "BYPASS" : "EXPIRED"));
    return deliverIt(unstored(check.response, forced ? "BYPASS" : "EXPIRED", { fwd: forced ? "request" : "stale", fwdStatus: check.response.status }));
  }
  // Another version (or none): its slices are keyed under another version id; the record goes, the lock stays ours.
  await e.store.delete(rec.storageKey).catch(() => false);
  return { to: "miss", status: forced ? "BYPASS" : "EXPIRED", cacheStatus: { fwd: forced ? "request" : "stale" } };
}

/** The background refresh of stale-while-revalidate for a record: refreshed, or deleted when the object changed. */
async function refreshRecord(e: Engine, tx: Transaction, rec: SlicedRecord): Promise<void> {
  try {
    const check = await checkRecord(e, tx, rec.meta);
    if (check.kind === "same") {
      const updated = updatedRecord(e, tx, rec.meta, check);
      if (updated) await e.store.put(rec.storageKey, updated.meta, null, updated.ttl);
      else await e.store.delete(rec.storageKey);
    } else if (check.kind === "changed") {
      await e.store.delete(rec.storageKey);
    } else await check.response?.body?.cancel();
  } catch {
    // left as it was: the next request tries again
  } finally {
    release(tx);
  }
}

type RecordCheck =
  | { kind: "same"; headers: Headers; requestTime: number; responseTime: number }
  | { kind: "changed" }
  | { kind: "error"; response?: Response; error?: unknown };

/** Asks the origin whether the record's version is current: a conditional `Range: bytes=0-0`. */
async function checkRecord(e: Engine, tx: Transaction, meta: EntryMeta & { sliced: SlicedObject }): Promise<RecordCheck> {
  const headers: Record<string, string> = { range: "bytes=0-0" };
  if (meta.etag) headers["if-none-match"] = meta.etag;
  if (meta.lastModified) headers["if-modified-since"] = meta.lastModified;
  const requestTime = e.now();
  let res: Response;
  try {
    res = await originGet(e, tx, headers);
  } catch (error) {
    return { kind: "error", error };
  }
  if (isOriginError(res.status)) return { kind: "error", response: res };
  await res.body?.cancel();
  const object = { etag: meta.etag, lastModified: meta.lastModified, total: meta.sliced.total };
  const cr = parseContentRange(res.headers.get("content-range"));
  const total = res.status === 206 && cr ? cr.total : Number(res.headers.get("content-length") ?? NaN);
  const same =
    res.status === 304 || ((res.status === 206 || res.status === 200) && sameVersion(object, { ...validatorsOf(res.headers), total }));
  if (!same) return { kind: "changed" };
  const fresh = new Headers(res.headers);
  for (const h of ["content-range", "content-length"]) fresh.delete(h);
  return { kind: "same", headers: fresh, requestTime, responseTime: e.now() };
}

/** A record's meta refreshed by the origin's answer (RFC 9111 §4.3.4); undefined when it may no longer be stored. */
function updatedRecord(
  e: Engine,
  tx: Transaction,
  meta: EntryMeta & { sliced: SlicedObject },
  r: { headers: Headers; requestTime: number; responseTime: number },
): { meta: EntryMeta & { sliced: SlicedObject }; ttl: number } | undefined {
  const decision = decideRefreshed(meta, r, tx.rule, e.edge);
  if (!decision.store) return undefined;
  return { meta: { ...decision.meta, vary: meta.vary, sliced: meta.sliced }, ttl: decision.physicalTtl };
}

/**
 * The record of a sliced object from the first 206, when policy lets it be stored (RFC 9111 §3 as for a 200 of the
 * whole object, the rule's no_store and min_uses).
 */
function recordDecision(e: Engine, tx: Transaction, headers: Headers, requestTime: number, total: number, sliceBytes: number) {
  const { request, url, rule, found } = tx;
  const whole = new Headers(headers);
  for (const h of ["content-range", "content-length"]) whole.delete(h); // the record has no body; deliver sets the length
  const decision = decideStorage({
    key: found.entry?.meta.key ?? found.marker?.key ?? tx.key,
    requestHeaders: request.headers,
    status: 200,
    statusText: "OK",
    headers: whole,
    requestTime,
    responseTime: e.now(),
    rule,
    edge: e.edge,
  });
  if (!decision.store || conditionMatches(rule?.no_store, request, url) || !e.uses.reached(found.storageKey, rule?.min_uses ?? 1)) return undefined;
  const version = versionId(validatorsOf(headers), total, sliceBytes);
  const meta = { ...decision.meta, sliced: { total, sliceBytes, version } };
  return { meta, varyFields: decision.varyFields, physicalTtl: decision.physicalTtl };
}

/** The 200 a 206 stands for when `body` is the whole object: its headers, without Content-Range. */
function whole(res: Response, body: ReadableStream<Uint8Array>, total: number): Response {
  const headers = new Headers(res.headers);
  headers.delete("content-range");
  headers.set("content-length", String(total));
  return new Response(body, { status: 200, statusText: "OK", headers });
}

/** Bodies one after the other as one stream of `total` bytes (natively piped on workerd). */
function concat(tx: Transaction, bodies: ReadableStream<Uint8Array>[], total: number): ReadableStream<Uint8Array> {
  const { readable, writable } = lengthStream(total);
  const run = async () => {
    let i = 0;
    try {
      for (; i < bodies.length; i++) await bodies[i]!.pipeTo(writable, { preventClose: true });
      await writable.close();
    } catch (error) {
      await writable.abort(error).catch(() => undefined);
      for (i++; i < bodies.length; i++) await bodies[i]!.cancel().catch(() => undefined);
    }
  };
  tx.ctx.waitUntil(run());
  return readable;
}

/** The client's own request (its Range and conditionals) to the origin, answered as the origin answers, unstored. */
async function passThrough(e: Engine, tx: Transaction, status: XCacheStatus, cacheStatus: CacheStatusParams): Promise<Outcome> {
  let res: Response;
  try {
    res = await e.origin(tx.request, tx.ctx.clientIp, { method: tx.request.method });
  } catch (error) {
    return originFailure(error, status, cacheStatus);
  }
  return unstored(res, status, cacheStatus);
}

function unstored(res: Response, status: XCacheStatus, cacheStatus: CacheStatusParams): Outcome {
  const headers = headerPairs(endToEnd(res.headers));
  const body = NULL_BODY_STATUS.has(res.status) ? null : res.body;
  return { status: res.status, statusText: res.statusText, headers, body, xcs: status, cacheStatus: { ...cacheStatus, stored: false } };
}
