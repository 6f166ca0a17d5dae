/**
 * Heads of stored entries, decoded and checked against their digest when read, kept by file name (a file is never
 * rewritten, so a kept head never goes stale): a HIT of a known head reads only its body, natively. Bounded in bytes
 * (the heads' encoded length), least recently used first out.
 */
import type { StoredHead } from "./format.ts";

export class HeadCache {
  private readonly heads = new Map<string, { head: StoredHead; bytes: number }>();
  private held = 0;
  private readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.held;
  }

  get(file: string): StoredHead | undefined {
    const h = this.heads.get(file);
    if (!h) return undefined;
    this.heads.delete(file); // most recently used last
    this.heads.set(file, h);
    return h.head;
  }

  /** Keeps `head` (whose encoded form is `bytes` long) for `file`, dropping the least recently used beyond the bound. */
  set(file: string, head: StoredHead, bytes: number) {
    this.delete(file);
    if (bytes > this.maxBytes) return;
    this.heads.set(file, { head, bytes });
    this.held += bytes;
    for (const [f, h] of this.heads) {
      if (this.held <= this.maxBytes) break;
      this.heads.delete(f);
      this.held -= h.bytes;
    }
  }

  delete(file: string) {
    const h = this.heads.get(file);
    if (!h) return;
    this.heads.delete(file);
    this.held -= h.bytes;
  }
}
