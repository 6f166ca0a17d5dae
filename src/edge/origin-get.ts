/**
 * The edge's own requests to the origin for what it stores (a whole response, a slice, a revalidation): a GET of the
 * client's URL without the client's Range and conditionals, which would make the origin answer something other than
 * the stored representation, and with the edge's own headers instead (a slice's Range, the stored validators).
 */
import type { Engine, Transaction } from "./transaction.ts";

/** Request headers that would make the origin answer something other than the whole, storable response. */
export const PARTIAL_REQUEST_HEADERS = ["range", "if-range", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since"];

/** `idleLimit`: the body fails when it stalls (origin_idle_timeout_ms, see idle.ts). */
export function originGet(e: Engine, tx: Transaction, headers?: Record<string, string>, idleLimit?: boolean): Promise<Response> {
  return e.origin(tx.request, tx.ctx.clientIp, { method: "GET", drop: PARTIAL_REQUEST_HEADERS, headers, idleLimit });
}
