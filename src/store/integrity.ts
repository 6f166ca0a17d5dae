/**
 * Integrity of stored entries: a digest of the head (kept in the trailer and the index, checked at recovery and when
 * the head is read) and one digest per BLOCK of the body (a table between the body and the trailer), computed once
 * when the entry is written.
 *
 * The body is checked lazily, block by block: a block not yet checked is read in JavaScript and passed on only once
 * its digest matched (verifiedBody: a mismatch errors the stream, the client's connection ends short, and the caller
 * drops the entry). A block that matched is then served natively (the disk service's body returned untouched, no
 * JavaScript on its bytes) until `store_recheck_seconds` have passed; the next read after that checks it again (a scrub
 * driven by reads, at most one checked read per block per period). What this store checked stays in its memory only: after
 * a restart every block is checked again on its first read.
 *
 * Digests are SHA-256 cut to DIGEST_LEN bytes: enough to tell any corruption, cheap to keep. Bodies are read a block
 * at a time (readBlock) and each block hashed in one native call: JavaScript runs once per MiB, not once per chunk.
 */

import type { Slots } from "./slots.ts";

/** Body bytes per digest. */
export const BLOCK = 1 << 20;
/** Bytes kept of each block's digest. */
export const DIGEST_LEN = 16;

export function blockCount(bodyLen: number): number {
  return Math.ceil(bodyLen / BLOCK);
}

/**
 * When each block of one entry's body was last found to match its digest (ms; 0: never). Kept beside the entry in
 * the index, for this run only.
 */
export class BlockChecks {
  private readonly at: Float64Array;
  constructor(bodyLen: number) {
    this.at = new Float64Array(Math.max(1, blockCount(bodyLen)));
  }

  /** Whether every block from `first` to `last` matched within `withinMs` before `now`. */
  covers(first: number, last: number, now: number, withinMs: number): boolean {
    for (let b = first; b <= last; b++) if (!(this.at[b]! > now - withinMs)) return false;
    return true;
  }

  /** Until when (ms) every block from `first` to `last` counts as checked: the oldest check plus `withinMs`. */
  until(first: number, last: number, withinMs: number): number {
    let oldest = Infinity;
    for (let b = first; b <= last; b++) oldest = Math.min(oldest, this.at[b] ?? 0);
    return oldest + withinMs;
  }

  mark(block: number, now: number) {
    if (block < this.at.length) this.at[block] = now;
  }
}

/** Bytes of the digest table of a body of `bodyLen` bytes. */
export function tableLen(bodyLen: number): number {
  return blockCount(bodyLen) * DIGEST_LEN;
}

/** The head's digest as it is kept in the trailer and the index: 8 bytes, hex. */
export async function headDigest(head: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", head), 0, 8);
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A block's digest: SHA-256 cut to DIGEST_LEN bytes (one native call per block). */
export async function blockDigest(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes), 0, DIGEST_LEN);
}

/** The digest table of a body written chunk by chunk: `update` with every chunk in order, then `table()`. */
export class BlockHasher {
  private parts: Uint8Array[] = [];
  private filled = 0;
  private readonly done: Promise<Uint8Array>[] = [];

  /** The next bytes of the body, in order (whole blocks go straight to the hash; parts of one are gathered). */
  update(chunk: Uint8Array) {
    for (let off = 0; off < chunk.byteLength; ) {
      const take = Math.min(BLOCK - this.filled, chunk.byteLength - off);
      const part = chunk.subarray(off, off + take);
      if (take === BLOCK) this.done.push(blockDigest(part));
      else {
        this.parts.push(part.slice());
        this.filled += take;
        if (this.filled === BLOCK) this.endBlock();
      }
      off += take;
    }
  }

  private endBlock() {
    const block = new Uint8Array(this.filled);
    let at = 0;
    for (const p of this.parts) (block.set(p, at), (at += p.byteLength));
    this.done.push(blockDigest(block));
    this.parts = [];
    this.filled = 0;
  }

  /** The table: DIGEST_LEN bytes per block, in order. */
  async table(): Promise<Uint8Array> {
    if (this.filled) this.endBlock();
    const digests = await Promise.all(this.done);
    const out = new Uint8Array(digests.length * DIGEST_LEN);
    digests.forEach((d, i) => out.set(d, i * DIGEST_LEN));
    return out;
  }
}

/** The digest table of a body held whole (a small entry written in one piece): each block hashed where it lies. */
export async function digestTable(body: Uint8Array): Promise<Uint8Array> {
  const out = new Uint8Array(tableLen(body.byteLength));
  const digests = [];
  for (let at = 0; at < body.byteLength; at += BLOCK) digests.push(blockDigest(body.subarray(at, Math.min(at + BLOCK, body.byteLength))));
  (await Promise.all(digests)).forEach((d, i) => out.set(d, i * DIGEST_LEN));
  return out;
}

/** Whether `digest` equals the `index`-th entry of `table`. */
function matches(table: Uint8Array, index: number, digest: Uint8Array): boolean {
  const at = index * DIGEST_LEN;
  if (at + DIGEST_LEN > table.byteLength) return false;
  for (let i = 0; i < DIGEST_LEN; i++) if (table[at + i] !== digest[i]) return false;
  return true;
}

/** Checks a body held whole against its table (small entries are read in one piece). */
export async function bodyMatches(body: Uint8Array, table: Uint8Array): Promise<boolean> {
  if (table.byteLength !== tableLen(body.byteLength)) return false;
  const hasher = new BlockHasher();
  hasher.update(body);
  const got = await hasher.table();
  return got.every((b, i) => b === table[i]);
}

export interface VerifyOptions {
  bodyLen: number;
  /** The block `source` starts with. */
  firstBlock: number;
  /** The digest table of the whole body. */
  table: Uint8Array;
  /** Body offsets (inclusive) of the bytes to pass on; the rest of the blocks is read and checked, not sent. */
  from: number;
  to: number;
  /** Called once, before the stream errors, when a block does not match. */
  onCorrupt: () => void;
  /** Bounds the block reads under way (each holds a block's buffer while it is read and checked). */
  slots?: Slots;
  /** A slot of `slots` already held for the first block (given back with it). */
  held?: () => void;
  /** Called with each block's index once it matched. */
  onChecked?: (block: number) => void;
  /** Called with the bytes of each block read (before it is checked). */
  onRead?: (bytes: number) => void;
}

/**
 * Body bytes read from the start of block `firstBlock`, checked block by block: a block's bytes are passed on (the
 * part within [from, to]) only after its digest matched. Holds at most one block while it reads (under a slot of
 * `slots`), and passes on a copy of the part of a block it needs, so a small range keeps no block alive.
 */
export function verifiedBody(source: ReadableStream<Uint8Array>, o: VerifyOptions): ReadableStream<Uint8Array> {
  const reader = source.getReader({ mode: "byob" });
  let held = o.held;
  const slot = async () => {
    const h = held;
    held = undefined;
    return h ?? (await o.slots?.acquire()) ?? (() => undefined);
  };
  let block = o.firstBlock;
  const lastBlock = blockCount(o.bodyLen) - 1;
  const fail = (controller: ReadableStreamDefaultController<Uint8Array>, why: string) => {
    o.onCorrupt();
    void reader.cancel().catch(() => undefined);
    controller.error(new Error(`stored body does not match its digest: ${why}`));
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (block > lastBlock || block * BLOCK > o.to) {
        held?.();
        void reader.cancel().catch(() => undefined);
        return controller.close();
      }
      const start = block * BLOCK;
      const end = Math.min(start + BLOCK, o.bodyLen); // exclusive
      const release = await slot();
      try {
        let bytes: Uint8Array;
        try {
          bytes = await readBlock(reader, end - start);
        } catch (err) {
          return controller.error(err);
        }
        o.onRead?.(bytes.byteLength);
        if (bytes.byteLength < end - start) return fail(controller, `the body ended at ${start + bytes.byteLength} of ${o.bodyLen} bytes`);
        if (!matches(o.table, block, await blockDigest(bytes))) return fail(controller, `block ${block}`);
        o.onChecked?.(block);
        const a = Math.max(o.from, start) - start;
        const b = Math.min(o.to + 1, end) - start;
        if (b > a) controller.enqueue(a === 0 && b === bytes.byteLength ? bytes : bytes.slice(a, b));
        block++;
      } finally {
        release();
      }
    },
    cancel(reason) {
      held?.();
      held = undefined;
      return reader.cancel(reason);
    },
  });
}

type ByobReader = ReadableStreamBYOBReader & { readAtLeast?: <T extends ArrayBufferView>(min: number, view: T) => Promise<ReadableStreamReadResult<T>> };

/**
 * Up to `size` bytes from a byte stream, fewer only at its end, in as few reads as the stream allows (workerd's
 * readAtLeast: one read per block, whatever size the producer writes in; a body arrives in 4 KB writes from the cache).
 */
export async function readBlock(reader: ReadableStreamBYOBReader, size: number, prefix?: Uint8Array): Promise<Uint8Array> {
  let buffer = new ArrayBuffer(size);
  let filled = 0;
  if (prefix?.byteLength) {
    new Uint8Array(buffer).set(prefix);
    filled = prefix.byteLength;
  }
  const r = reader as ByobReader;
  while (filled < size) {
    const view = new Uint8Array(buffer, filled, size - filled);
    const { done, value } = r.readAtLeast ? await r.readAtLeast(size - filled, view) : await r.read(view);
    if (value) {
      buffer = value.buffer as ArrayBuffer; // the view's buffer was transferred to the stream and back
      filled += value.byteLength; // a last read may bring bytes and done at once
    }
    if (done || !value) break;
  }
  return new Uint8Array(buffer, 0, filled);
}
