/** Answering a client's conditional GET/HEAD from a response the cache holds (RFC 9110 §13.1, §13.2.2). */
import { parseHttpDate } from "./freshness.ts";
import { headerOf, type HeaderList } from "./headers.ts";

/** Whether If-None-Match / If-Modified-Since make this 200 (its headers `response`) a 304 for the client. */
export function isNotModified(request: Headers, response: HeaderList): boolean {
  const inm = request.get("if-none-match");
  if (inm !== null) {
    const etag = headerOf(response, "etag");
    if (inm.trim() === "*") return true;
    if (!etag) return false;
    const weak = (t: string) => t.trim().replace(/^W\//, "");
    return inm.split(",").some((t) => weak(t) === weak(etag));
  }
  const ims = parseHttpDate(request.get("if-modified-since"));
  if (ims === undefined) return false;
  const lastModified = parseHttpDate(headerOf(response, "last-modified") ?? headerOf(response, "date"));
  return lastModified !== undefined && lastModified <= ims;
}

/**
 * The fields a 304 carries (RFC 9110 §15.4.5), plus those a cache adds. CDN-Cache-Control is there only when the
 * answer goes to another tier (deliver.ts removes it for clients), which updates its stored copy with it.
 */
const KEPT_IN_304 = new Set(["cache-control", "cdn-cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified", "age", "via", "cache-status", "x-cache-status"]);

export function notModifiedHeaders(headers: HeaderList): HeaderList {
  return headers.filter(([name]) => KEPT_IN_304.has(name));
}
