/**
 * Recovery of the store directory before workerd starts (Node): every file is checked by its trailer and its head's
 * digest, and what the store worker must never see goes — upload leftovers (`.*.tmp` of a killed process), files
 * without a valid trailer (or of an older format), whose size disagrees with it or whose head does not match its
 * digest, older writes of a key, expired entries — then the bound is enforced, least recently used first (use times
 * from the worker's `lru.json`, else the file's mtime). Bodies are checked as they are read. The result is the index
 * the worker starts with.
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { TRAILER_LEN, decodeTrailer, fileLength, parseFileName } from "./format.ts";
import { headDigest } from "./integrity.ts";
import type { IndexRow } from "../contracts/store.ts";

/** Larger heads are not the store's (its worker refuses them at write). */
const MAX_HEAD = 256 * 1024;

export interface ScanResult {
  rows: IndexRow[];
  bytes: number;
  removed: number;
}

export async function scanStore(
  dir: string,
  opts: { maxBytes: number; maxEntries?: number; inactiveSeconds: number; now?: number },
): Promise<ScanResult> {
  const now = opts.now ?? Date.now();
  mkdirSync(dir, { recursive: true });
  const lastUse = new Map<string, number>();
  try {
    const rows = JSON.parse(readFileSync(join(dir, "lru.json"), "utf8")) as [string, number][];
    for (const [file, at] of rows) lastUse.set(file, at);
  } catch {
    /* no saved order */
  }
  let removed = 0;
  const remove = (path: string) => {
    rmSync(path, { force: true, recursive: true });
    removed++;
  };
  const newest = new Map<string, { row: IndexRow; path: string }>();
  for (const sub of readdirSync(dir)) {
    const subPath = join(dir, sub);
    if (!/^[0-9a-f]{2}$/.test(sub)) {
      if (sub.startsWith(".") && sub.endsWith(".tmp")) remove(subPath);
      continue;
    }
    if (!statSync(subPath).isDirectory()) continue;
    for (const base of readdirSync(subPath)) {
      const path = join(subPath, base);
      const name = parseFileName(base);
      if (!name || name.hash.slice(0, 2) !== sub) {
        remove(path); // upload leftovers and anything else
        continue;
      }
      const fd = openSync(path, "r");
      let size = 0;
      const tail = new Uint8Array(TRAILER_LEN);
      let head: Uint8Array | null = null;
      let t: ReturnType<typeof decodeTrailer> = null;
      try {
        size = fstatSync(fd).size;
        if (size >= TRAILER_LEN) readSync(fd, tail, 0, TRAILER_LEN, size - TRAILER_LEN);
        t = size >= TRAILER_LEN ? decodeTrailer(tail) : null;
        if (t && fileLength(t.h, t.b) === size && t.h <= MAX_HEAD) {
          head = new Uint8Array(t.h);
          readSync(fd, head, 0, t.h, 0);
        }
      } finally {
        closeSync(fd);
      }
      if (!t || !head || t.e <= now || (await headDigest(head)) !== t.hh) {
        remove(path);
        continue;
      }
      const file = `${sub}/${base}`;
      const at = lastUse.get(file) ?? statSync(path).mtimeMs;
      if (at < now - opts.inactiveSeconds * 1000) {
        remove(path);
        continue;
      }
      const row: IndexRow = [name.hash, file, t.h, t.b, t.e, t.w, Math.floor(at), t.hh];
      const prev = newest.get(name.hash);
      if (prev && prev.row[5] >= t.w) {
        remove(path);
        continue;
      }
      if (prev) remove(prev.path);
      newest.set(name.hash, { row, path });
    }
  }
  const all = [...newest.values()].sort((a, b) => a.row[6] - b.row[6]);
  let bytes = all.reduce((n, { row }) => n + fileLength(row[2], row[3]), 0);
  let i = 0;
  const maxEntries = opts.maxEntries ?? Infinity;
  while ((bytes > opts.maxBytes || all.length - i > maxEntries) && i < all.length) {
    const { row, path } = all[i++]!;
    bytes -= fileLength(row[2], row[3]);
    remove(path);
  }
  return { rows: all.slice(i).map((x) => x.row), bytes, removed };
}

/** Bytes of the store's entry files (what the bound limits), for tests and the bench. */
export function storeBytes(dir: string): number {
  let n = 0;
  if (!existsSync(dir)) return 0;
  for (const sub of readdirSync(dir)) {
    const p = join(dir, sub);
    if (!/^[0-9a-f]{2}$/.test(sub) || !statSync(p).isDirectory()) continue;
    for (const base of readdirSync(p)) {
      try {
        n += statSync(join(p, base)).size;
      } catch {
        /* deleted meanwhile */
      }
    }
  }
  return n;
}
