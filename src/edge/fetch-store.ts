/**
 * Step "fetch and store": the whole response from the origin, stored when policy allows (RFC 9111 §3 via
 * decideStorage, the rule's no_store and min_uses), the body teed to the client and the store. The request's
 * coalescing lock ends once the store has the response (or at once when nothing is stored). Large objects come here
 * only when the slice step's exit says the object is whole after all (see engine.ts).
 */
import { primaryKey } from "../cache/key.ts";
import { endToEnd, headerPairs } from "../cache/headers.ts";
import { decideStorage } from "../cache/policy.ts";
import { conditionMatches } from "../cache/rules.ts";
import type { CacheStatusParams, XCacheStatus } from "../cache/status.ts";
import { lengthOf, originFailure } from "./deliver.ts";
import { compressed } from "./compress.ts";
import { putResponse } from "./lookup.ts";
import { originGet } from "./origin-get.ts";
import { NULL_BODY_STATUS, release, type Engine, type Outcome, type Transaction } from "./transaction.ts";

/** Fetches the whole response for `tx`, stores it when allowed, and answers with it. */
export async function fetchAndStore(e: Engine, tx: Transaction, status: XCacheStatus, cacheStatus: CacheStatusParams): Promise<Outcome> {
  tx.claim ??= e.coalescer.local(tx.found.storageKey);
  const requestTime = e.now();
  let response: Response;
  try {
    response = await originGet(e, tx);
  } catch (error) {
    release(tx);
    return originFailure(error, status, cacheStatus);
  }
  return storeResponse(e, tx, response, requestTime, status, cacheStatus);
}

/**
 * Answers with an origin response and stores it when policy allows. `stored` settles when the store has it (or
 * refused it); the lock `tx.claim` is released then.
 */
export async function storeResponse(
  e: Engine,
  tx: Transaction,
  origin: Response,
  requestTime: number,
  status: XCacheStatus,
  cacheStatus: CacheStatusParams,
): Promise<Outcome & { stored?: Promise<void> }> {
  const { request, url, rule, found } = tx;
  const response = await compressed(e.edge, request, origin);
  const decision = decideStorage({
    key: found.entry?.meta.key ?? found.marker?.key ?? primaryKey(url, rule?.query),
    requestHeaders: request.headers,
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
    requestTime,
    responseTime: e.now(),
    rule,
    edge: e.edge,
  });
  const headers = headerPairs(endToEnd(response.headers));
  const size = lengthOf(headers);
  const body = NULL_BODY_STATUS.has(response.status) ? null : response.body;
  const answer = (b: ReadableStream<Uint8Array> | null, params: CacheStatusParams): Outcome => ({
    status: response.status,
    statusText: response.statusText,
    headers,
    body: b,
    xcs: status,
    cacheStatus: params,
    size,
  });
  const allowed =
    decision.store && !conditionMatches(rule?.no_store, request, url) && e.uses.reached(found.storageKey, rule?.min_uses ?? 1);
  if (!allowed) {
    release(tx);
    return answer(body, { ...cacheStatus, stored: false });
  }
  const [client, toStore] = body ? body.tee() : [null, null];
  // A known length was checked against max_object_bytes already; only unknown lengths need counting on the way.
  const limited = toStore && size === undefined ? limitBytes(toStore, e.edge.max_object_bytes) : toStore;
  const stored = putResponse(e, tx, decision.meta, decision.varyFields, limited, decision.physicalTtl).then(
    (keys) => release(tx, keys.includes(found.storageKey)),
    () => release(tx),
  );
  tx.ctx.waitUntil(stored);
  // "stored" only when it is known to fit: a body without a length may still turn out too large on the way.
  return { ...answer(client, { ...cacheStatus, stored: size !== undefined }), stored };
}

/** Passes a body through, erroring (so the store keeps nothing) once it exceeds `max` bytes. */
function limitBytes(body: ReadableStream<Uint8Array>, max: number): ReadableStream<Uint8Array> {
  let seen = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > max) controller.error(new Error("object larger than max_object_bytes"));
        else controller.enqueue(chunk);
      },
    }),
  );
}
