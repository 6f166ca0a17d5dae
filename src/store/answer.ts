/**
 * The store's HIT answer from a stored head (pure: only the standard Response and Headers), apart from the worker so
 * that what an answer may carry is unit-tested.
 */
import type { StoredHead } from "./format.ts";
import { DISK_REF_HEADER } from "../contracts/store.ts";

/**
 * The HIT response: the stored status and headers, the body (or the range) with its length. Never the stored head's
 * own `x-parrot-disk`: only the store says where a body lies (the worker's withDiskRef), and a stored copy would let
 * whoever wrote the entry point the edge at another entry's file.
 */
export function hitResponse(
  head: StoredHead,
  body: ReadableStream<Uint8Array> | Uint8Array | null,
  bodyLen: number,
  range?: { start: number; end: number },
): Response {
  const length = range ? range.end - range.start + 1 : bodyLen;
  const own: [string, string][] = [["cf-cache-status", "HIT"], ["content-length", String(length)]];
  if (range) own.push(["content-range", `bytes ${range.start}-${range.end}/${bodyLen}`]);
  const base = headerRecord(head);
  let headers: HeadersInit;
  if (base) {
    // A plain object: the runtime takes it in one step (a Headers object filled field by field costs a call each).
    const record: Record<string, string> = Object.assign(Object.create(null), base);
    for (const [n, v] of own) record[n] = v;
    delete record[DISK_REF_HEADER];
    headers = record;
  } else {
    const h = new Headers();
    for (const [n, v] of head.headers) h.append(n, v);
    for (const [n, v] of own) h.set(n, v);
    h.delete(DISK_REF_HEADER);
    headers = h;
  }
  return new Response(body, { status: range ? 206 : head.status, statusText: range ? "Partial Content" : head.statusText, headers });
}

const records = new WeakMap<StoredHead, Record<string, string> | null>();

/** The stored headers as one object (made once per kept head), or null when a name repeats (Set-Cookie). */
function headerRecord(head: StoredHead): Record<string, string> | null {
  let r = records.get(head);
  if (r !== undefined) return r;
  r = Object.create(null) as Record<string, string>;
  for (const [n, v] of head.headers) {
    if (r[n] !== undefined) {
      r = null;
      break;
    }
    r[n] = v;
  }
  records.set(head, r);
  return r;
}
