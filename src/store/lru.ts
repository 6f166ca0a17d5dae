/**
 * The store's index: which file answers each key, its sizes and expiry, and the order of last use (a Map's insertion
 * order, oldest first). Bytes are accounted per file (head + body + trailer); writes whose length is known reserve
 * their size first, so the disk holds at most the bound plus the writes of unknown length under way.
 */
import { fileLength } from "./format.ts";
import type { BlockChecks } from "./integrity.ts";

export interface IndexEntry {
  hash: string;
  file: string;
  headLen: number;
  bodyLen: number;
  /** Expiry, ms. */
  expires: number;
  /** Write time, ms: the newer write of a key wins. */
  written: number;
  /** Last use, ms. */
  lastAccess: number;
  /** The head's digest (format.ts): checked when the head is read. */
  headHash: string;
  /** Which body blocks this run found matching their digests, and when (integrity.ts); absent: none yet. */
  checks?: BlockChecks;
  /** When this write became visible (this run only): a lock call asks whether it is newer than a lookup. */
  indexedAt?: number;
}

export function fileSize(e: Pick<IndexEntry, "headLen" | "bodyLen">): number {
  return fileLength(e.headLen, e.bodyLen);
}

export class StoreIndex {
  private readonly entries = new Map<string, IndexEntry>();
  private bytes = 0;
  private reservedBytes = 0;

  get size(): number {
    return this.entries.size;
  }
  /** Bytes of the files in the index. */
  get total(): number {
    return this.bytes;
  }
  get reserved(): number {
    return this.reservedBytes;
  }

  get(hash: string): IndexEntry | undefined {
    return this.entries.get(hash);
  }

  /** Marks a use: the entry becomes the most recently used. */
  touch(hash: string, now: number): IndexEntry | undefined {
    const e = this.entries.get(hash);
    if (!e) return undefined;
    e.lastAccess = now;
    this.entries.delete(hash);
    this.entries.set(hash, e);
    return e;
  }

  /**
   * Adds a finished write. Returns the file that is no longer referenced (the replaced entry's, or this one's when
   * a newer write of the key already finished), for the caller to delete.
   */
  add(e: IndexEntry): string | undefined {
    const old = this.entries.get(e.hash);
    if (old && old.written > e.written) return e.file;
    if (old) this.remove(e.hash);
    this.entries.set(e.hash, e);
    this.bytes += fileSize(e);
    return old?.file;
  }

  remove(hash: string): IndexEntry | undefined {
    const e = this.entries.get(hash);
    if (!e) return undefined;
    this.entries.delete(hash);
    this.bytes -= fileSize(e);
    return e;
  }

  /** Reserves room for a write under way; `grow` adds to it as bytes arrive, `release` ends it. */
  reserve(n: number): { grow(more: number): void; release(): void } {
    let held = n;
    this.reservedBytes += n;
    return {
      grow: (more: number) => {
        if (held < 0) return;
        held += more;
        this.reservedBytes += more;
      },
      release: () => {
        if (held >= 0) this.reservedBytes -= held;
        held = -1;
      },
    };
  }

  /**
   * Removes least recently used entries until files + reservations fit in `max` bytes and at most `maxEntries`
   * entries remain; returns them.
   */
  evictToFit(max: number, maxEntries = Infinity): IndexEntry[] {
    const out: IndexEntry[] = [];
    for (const hash of this.entries.keys()) {
      if (this.bytes + this.reservedBytes <= max && this.entries.size <= maxEntries) break;
      out.push(this.remove(hash)!);
    }
    return out;
  }

  /** Removes the entries unused since `before` or expired at `now`; returns them. */
  sweep(now: number, before: number): IndexEntry[] {
    const out: IndexEntry[] = [];
    for (const [hash, e] of this.entries) {
      if (e.lastAccess < before || e.expires <= now) out.push(this.remove(hash)!);
    }
    return out;
  }

  /** Oldest first. */
  list(): IndexEntry[] {
    return [...this.entries.values()];
  }
}
