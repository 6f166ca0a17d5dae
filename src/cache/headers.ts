/** Header handling shared by the proxy and the cache: hop-by-hop removal (RFC 9110 §7.6.1) and 304 merging. */

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-authenticate",
  "proxy-authorization",
]);

/** A copy of `headers` without hop-by-hop fields, those the Connection field lists, and `drop` (lower case). */
export function endToEnd(headers: Headers, drop: Iterable<string> = []): Headers {
  const out = new Headers();
  const listed = new Set(
    (headers.get("connection") ?? "")
      .split(",")
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
  const dropped = new Set(drop);
  for (const [name, value] of headers) {
    if (HOP_BY_HOP.has(name) || listed.has(name) || dropped.has(name)) continue;
    if (name === "set-cookie") continue; // re-added one by one below: Headers joins them with ", " otherwise
    out.append(name, value);
  }
  if (!dropped.has("set-cookie") && !listed.has("set-cookie")) {
    for (const cookie of headers.getSetCookie()) out.append("set-cookie", cookie);
  }
  return out;
}

/**
 * A response's header fields as (lower-case name, value) pairs in order, Set-Cookie lines apart: the form entries
 * are stored in, and the one the edge builds an answer in (a Response is made from it once: each change to a
 * Headers object is a call into the runtime).
 */
export type HeaderList = [string, string][];

/** The first value of `name` (lower case) in a list, or null. */
export function headerOf(list: HeaderList, name: string): string | null {
  for (const [n, v] of list) if (n === name) return v;
  return null;
}

/** Sets `name` to `value`: every earlier line of it goes, one line comes at the end. */
export function setHeader(list: HeaderList, name: string, value: string) {
  for (let i = list.length - 1; i >= 0; i--) if (list[i]![0] === name) list.splice(i, 1);
  list.push([name, value]);
}

export function deleteHeader(list: HeaderList, name: string) {
  for (let i = list.length - 1; i >= 0; i--) if (list[i]![0] === name) list.splice(i, 1);
}

/** Headers as a list of pairs, Set-Cookie kept as separate lines: the form entries store them in. */
export function headerPairs(headers: Headers): HeaderList {
  const pairs: [string, string][] = [];
  for (const [name, value] of headers) if (name !== "set-cookie") pairs.push([name, value]);
  for (const cookie of headers.getSetCookie()) pairs.push(["set-cookie", cookie]);
  return pairs;
}

/** Fields a 304 must not change in the stored response (RFC 9111 §3.2; Content-Length describes the stored body). */
const NOT_UPDATED_BY_304 = new Set(["content-length", "content-encoding", "content-range", "transfer-encoding"]);

/** The stored headers updated with a 304's fields: each field the 304 carries replaces all stored lines of that name. */
export function mergeNotModified(stored: Headers, notModified: Headers): Headers {
  const fresh = endToEnd(notModified);
  const out = new Headers(stored);
  const replaced = new Set<string>();
  for (const [name] of fresh) {
    if (NOT_UPDATED_BY_304.has(name) || replaced.has(name)) continue;
    replaced.add(name);
    out.delete(name);
    if (name === "set-cookie") for (const c of fresh.getSetCookie()) out.append(name, c);
    else out.set(name, fresh.get(name)!);
  }
  return out;
}
