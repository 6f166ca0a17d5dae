/**
 * The on-disk format of one cache entry, and the pieces of workerd's cache protocol that are pure text handling.
 *
 * One file per stored response, never rewritten in place:
 *
 *   [head: JSON {status, statusText, headers}] [body bytes] [digest table: 16 bytes per MiB of body] [trailer: 192 bytes]
 *
 * The trailer (`encodeTrailer`) is written only after the whole body arrived with the length it announced, so a file
 * without a valid trailer — a write cut short, an upload the disk service committed on abort — is never an entry.
 * It carries the head's digest; the table the body's (integrity.ts): nothing stored is served unchecked.
 * Files are named `<2 hex>/<key hash>-<write id>`: each write creates a new file, the index (or, after a restart,
 * the newest valid trailer) says which one answers the key. Version 1 files (no digests) are not read: recovery
 * removes them.
 */

import { parseDirectives } from "../cache/directives.ts";
import { freshnessLifetime } from "../cache/freshness.ts";
import { parseRange, type ByteRange } from "../cache/range.ts";
import { tableLen } from "./integrity.ts";

export const TRAILER_LEN = 192;
const MAGIC = "\nPARROT-STORE-2\n";

/** What the trailer records: head length, body length, expiry (ms), write time (ms), the head's digest. */
export interface Trailer {
  h: number;
  b: number;
  e: number;
  w: number;
  hh: string;
}

export interface StoredHead {
  status: number;
  statusText: string;
  headers: [string, string][];
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Bytes of a file holding a head of `headLen` and a body of `bodyLen` bytes. */
export function fileLength(headLen: number, bodyLen: number): number {
  return headLen + bodyLen + tableLen(bodyLen) + TRAILER_LEN;
}

export function encodeTrailer(t: Trailer): Uint8Array {
  const json = JSON.stringify({ h: t.h, b: t.b, e: t.e, w: t.w, hh: t.hh });
  const room = TRAILER_LEN - MAGIC.length;
  if (json.length > room) throw new Error("trailer too long");
  return enc.encode(json.padEnd(room, " ") + MAGIC);
}

/** The trailer of a file whose last TRAILER_LEN bytes are `bytes`, or null when they are not one. */
export function decodeTrailer(bytes: Uint8Array): Trailer | null {
  if (bytes.byteLength !== TRAILER_LEN) return null;
  const text = dec.decode(bytes);
  if (!text.endsWith(MAGIC)) return null;
  try {
    const t = JSON.parse(text.slice(0, TRAILER_LEN - MAGIC.length).trimEnd()) as Trailer;
    const ok = [t.h, t.b, t.e, t.w].every((n) => Number.isSafeInteger(n) && n >= 0) && /^[0-9a-f]{16}$/.test(t.hh);
    return ok ? t : null;
  } catch {
    return null;
  }
}

/** Index of the blank line (`\r\n\r\n`) that ends an HTTP head, or -1. */
export function findHeadEnd(buf: Uint8Array): number {
  for (let i = 0; i + 3 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

const STATUS_LINE = /^HTTP\/\d(?:\.\d)? (\d{3})(?: (.*))?$/;

/** Parses the serialized `HTTP/1.1` response head workerd sends on a cache PUT. */
export function parseHttpHead(text: string): StoredHead | null {
  const [statusLine, ...lines] = text.split("\r\n");
  const m = STATUS_LINE.exec(statusLine ?? "");
  if (!m) return null;
  const headers: [string, string][] = [];
  for (const line of lines) {
    if (!line) continue;
    const i = line.indexOf(":");
    if (i <= 0) return null;
    headers.push([line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim()]);
  }
  return { status: Number(m[1]), statusText: m[2] ?? "", headers };
}

/** Headers that describe the framing of the upload, not the stored response. */
export const FRAMING_HEADERS = new Set(["content-length", "transfer-encoding", "connection", "keep-alive"]);

export function encodeHead(head: StoredHead): Uint8Array {
  return enc.encode(
    JSON.stringify({
      status: head.status,
      statusText: head.statusText,
      headers: head.headers.filter(([n]) => !FRAMING_HEADERS.has(n)),
    }),
  );
}

export function decodeHead(bytes: Uint8Array): StoredHead | null {
  try {
    const h = JSON.parse(dec.decode(bytes)) as StoredHead;
    return typeof h.status === "number" && Array.isArray(h.headers) ? h : null;
  } catch {
    return null;
  }
}

/**
 * How long the store keeps a response (seconds), from its own headers as a shared cache reads them (the edge sends
 * a plain `max-age` of the entry's physical lifetime). Null when it must not be stored (no-store, private, none).
 */
export function lifetimeSeconds(pairs: [string, string][]): number | null {
  const headers = new Headers();
  for (const [name, value] of pairs) headers.append(name, value);
  const cc = parseDirectives(headers.get("cache-control"));
  if (cc.has("no-store") || cc.has("private")) return null;
  const f = freshnessLifetime(200, headers, cc, { heuristicFraction: 0, heuristicMax: 0 });
  return f && f.explicit && f.lifetime > 0 ? f.lifetime : null;
}

/** A single satisfiable range of `size` bytes; undefined = none, several or invalid (whole body); null = 416. */
export function singleRange(header: string | null, size: number): ByteRange | null | undefined {
  const ranges = parseRange(header, size);
  if (ranges === null || ranges.length > 1) return undefined;
  return ranges.length === 1 ? ranges[0]! : null;
}

export function fileName(hash: string, writeId: string): string {
  return `${hash.slice(0, 2)}/${hash}-${writeId}`;
}

/** `<hash>-<write id>` → its parts; null for names the store did not write. */
export function parseFileName(base: string): { hash: string; writeId: string } | null {
  const m = /^([0-9a-f]{32})-([0-9a-z]+)$/.exec(base);
  return m ? { hash: m[1]!, writeId: m[2]! } : null;
}

/**
 * The key hash: 128 bits of SHA-256 over the cache namespace and the URL without its scheme (workerd hands the store
 * `https://` URLs through a service binding and `http://` ones through a socket: the same entry either way).
 */
export async function keyHash(namespace: string, url: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", enc.encode(`${namespace}\n${url.replace(/^[a-z][a-z0-9+.-]*:/i, "")}`));
  return [...new Uint8Array(digest, 0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
