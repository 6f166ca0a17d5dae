/**
 * Step "pass": methods other than GET and HEAD go straight to the origin, unstored. An unsafe method that succeeds
 * invalidates the request URL and its Location / Content-Location of the same origin (RFC 9111 §4.4).
 */
import { endToEnd, headerPairs } from "../cache/headers.ts";
import { originFailure } from "./deliver.ts";
import { NULL_BODY_STATUS, type Engine, type Outcome, type Transaction } from "./transaction.ts";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

/** `invalidate` removes URLs' entries from the store and every process's memory tier (EdgeCache.invalidate). */
export async function pass(e: Engine, tx: Transaction, invalidate: (urls: string[]) => Promise<void>): Promise<Outcome> {
  const { request, url } = tx;
  let response: Response;
  try {
    response = await e.origin(request, tx.ctx.clientIp, { method: request.method, body: request.body });
  } catch (error) {
    return originFailure(error, "BYPASS", { fwd: "method" });
  }
  if (!SAFE_METHODS.has(request.method) && response.status >= 200 && response.status < 400) {
    const urls = new Set<string>();
    for (const t of [url.href, response.headers.get("location"), response.headers.get("content-location")]) {
      if (!t || !URL.canParse(t, url)) continue;
      const target = new URL(t, url);
      if (target.host === url.host) urls.add(target.href); // only the same origin (RFC 9111 §4.4)
    }
    await invalidate([...urls]).catch(() => undefined);
  }
  return {
    status: response.status,
    statusText: response.statusText,
    headers: headerPairs(endToEnd(response.headers)),
    body: NULL_BODY_STATUS.has(response.status) ? null : response.body,
    xcs: "BYPASS",
    cacheStatus: { fwd: "method" },
  };
}
