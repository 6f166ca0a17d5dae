import { parseHttpDate } from "./freshness.ts";

/** Answering a client's conditional GET/HEAD from a response the cache holds (RFC 9110 §13.1, §13.2.2). */

/** Whether If-None-Match / If-Modified-Since make this 200 a 304 for the client. */
export function isNotModified(request: Headers, response: Headers): boolean {
  const inm = request.get("if-none-match");
  if (inm !== null) {
    const etag = response.get("etag");
    if (inm.trim() === "*") return true;
    if (!etag) return false;
    const weak = (t: string) => t.trim().replace(/^W\//, "");
    return inm.split(",").some((t) => weak(t) === weak(etag));
  }
  const ims = parseHttpDate(request.get("if-modified-since"));
  if (ims === undefined) return false;
  const lastModified = parseHttpDate(response.get("last-modified") ?? response.get("date"));
  return lastModified !== undefined && lastModified <= ims;
}

/** The fields a 304 carries (RFC 9110 §15.4.5), plus those a cache adds. */
const KEPT_IN_304 = ["cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified", "age", "via", "cache-status", "x-cache-status"];

export function notModifiedHeaders(headers: Headers): Headers {
  const out = new Headers();
  for (const name of KEPT_IN_304) {
    const v = headers.get(name);
    if (v !== null) out.set(name, v);
  }
  return out;
}
