/**
 * Reading a sliced object for one answer: each slice from the store, a missing one fetched from the origin into the
 * store first (one origin request per slice for the whole box: the coalescing lock of its key), then read back. The
 * client never reads a slice that the store has not checked whole, memory stays bounded whatever the client's speed
 * (nothing is buffered for it), and the next slice is fetched while the current one is sent (one slice read-ahead).
 *
 * Every slice must be the record's version: it is keyed under the version id, its stored meta must match, and the
 * origin is asked with `If-Match` (or `If-Unmodified-Since`) and checked again (Content-Range, validators, total).
 * When the origin has another version the record is deleted (the next request starts over) and the answer under way
 * fails (VersionChanged): its connection is closed rather than continued with other bytes.
 */
import type { EntryMeta, SlicedObject } from "../cache/entry.ts";
import { purgeEffect } from "../cache/purge.ts";
import { sliceStream } from "../cache/range.ts";
import {
  parseContentRange,
  sameVersion,
  sliceFits,
  sliceKey,
  sliceMeta,
  sliceOf,
  sliceSpan,
  validatorsOf,
  versionConditions,
} from "../cache/slices.ts";
import type { ByteRange } from "../cache/range.ts";
import type { Claim } from "./coalesce.ts";
import { blockReader, copyBlocks, COPY_BLOCK_BYTES } from "./block-copy.ts";
import { originGet } from "./origin-get.ts";
import { exactLength } from "./store.ts";
import { lengthStream } from "./length-stream.ts";
import type { Engine, Transaction } from "./transaction.ts";

/** An object record and where it is stored (the slices live under that key). */
export interface SlicedRecord {
  storageKey: string;
  meta: EntryMeta & { sliced: SlicedObject };
}

/** The origin now has another version of the object than the record describes. */
export class VersionChanged extends Error {
  constructor(detail: string) {
    super(`the object changed at the origin (${detail})`);
    this.name = "VersionChanged";
  }
}

/** The origin could not give a slice (an error status, a Range it ignored); the answer cannot go on. */
export class SliceUnavailable extends Error {
  constructor(detail: string) {
    super(`a slice could not be fetched (${detail})`);
    this.name = "SliceUnavailable";
  }
}

/** Slices live long: their key names their version, so they never go stale; the store's LRU bounds them. */
const SLICE_TTL = 365 * 86_400;
/** Tries to read a slice that others or this answer are fetching, before it is fetched for this answer alone. */
const ATTEMPTS = 4;
/** How many fetches of one slice by other requests a request waits for before it asks the origin itself. */
const MAX_WAITS = 2;

/** A slice stream handed out before the answer's body was asked for (the first slice opened to decide the status). */
interface Opened {
  index: number;
  from: number;
  to: number;
  body: ReadableStream<Uint8Array>;
}

export class SliceReader {
  /** Whether a slice of this answer had to come from the origin (Cache-Status `fwd=partial`). */
  fetched = false;
  private readonly writing = new Map<number, Promise<void>>();
  private first: Opened | undefined;
  private invalidated: Promise<void> | undefined;
  /** Bodies read from the store (a Range's exact bytes, with their length), as opposed to the origin's. */
  private readonly stored = new WeakSet<ReadableStream<Uint8Array>>();

  private readonly e: Engine;
  private readonly tx: Transaction;
  private readonly rec: SlicedRecord;

  constructor(e: Engine, tx: Transaction, rec: SlicedRecord) {
    this.e = e;
    this.tx = tx;
    this.rec = rec;
  }

  private get object(): SlicedObject {
    return this.rec.meta.sliced;
  }

  private key(index: number): string {
    return sliceKey(this.rec.storageKey, this.object.version, index);
  }

  private span(index: number): ByteRange {
    return sliceSpan(index, this.object.sliceBytes, this.object.total);
  }

  /** Opens bytes `from`..`to` of slice `index` now (deciding the answer's status); the body stream takes it over. */
  async openFirst(index: number, from: number, to: number): Promise<void> {
    this.first = { index, from, to, body: await this.open(index, from, to) };
  }

  /**
   * Claims slice `index` for a response of the origin that holds it (the first request's probe), so nobody else
   * fetches it meanwhile: call before the record is stored, then hand the body to the function it resolves to.
   */
  async claimSlice(index: number): Promise<(body: ReadableStream<Uint8Array>) => void> {
    const claim = await this.e.coalescer.claim(this.key(index), this.e.coalescer.mark(), this.waitUntil);
    return (body) => {
      if (typeof claim !== "object") return void body.cancel(); // another request has it, or just stored it
      this.storeSlice(index, claim, body);
      this.waitUntil(this.writing.get(index)!); // the answer may not read it (HEAD): the store still gets it
    };
  }

  /**
   * Bytes `start`..`end` of the object as one stream, slice after slice, one slice read ahead; within the first slice
   * opened, that slice's body itself.
   */
  stream(start: number, end: number): ReadableStream<Uint8Array> {
    const length = end - start + 1;
    const lastIndex = sliceOf(end, this.object.sliceBytes);
    let first = this.first;
    this.first = undefined;
    if (first && first.index === lastIndex && first.from === start && first.to === end && this.stored.has(first.body)) {
      // One slice, already open in the store: its body as it is (of its known length), pumped natively by the runtime.
      return first.body;
    }
    const { readable, writable } = lengthStream(length);
    const part = (index: number): Promise<ReadableStream<Uint8Array>> => {
      const span = this.span(index);
      const from = Math.max(start, span.start);
      const to = Math.min(end, span.end);
      if (first && first.index === index && first.from === from && first.to === to) {
        const body = first.body;
        first = undefined;
        return Promise.resolve(body);
      }
      return this.open(index, from, to);
    };
    const run = async () => {
      let next: Promise<ReadableStream<Uint8Array>> | undefined = part(sliceOf(start, this.object.sliceBytes));
      if (first) {
        void first.body.cancel(); // opened for another answer shape (multipart larger than the limit)
        first = undefined;
      }
      // One buffer for the whole answer where the runtime allows (block-copy.ts): pipeTo leaves a buffer per chunk
      // for V8 to collect.
      let buffer: ArrayBuffer | undefined;
      try {
        for (let index = sliceOf(start, this.object.sliceBytes); index <= lastIndex; index++) {
          const body: ReadableStream<Uint8Array> = await next!;
          next = index < lastIndex ? part(index + 1) : undefined;
          next?.catch(() => undefined);
          const blocks = blockReader(body);
          if (!blocks) {
            await body.pipeTo(writable, { preventClose: true });
            continue;
          }
          const writer = writable.getWriter();
          try {
            buffer = await copyBlocks(blocks, writer, buffer ?? new ArrayBuffer(COPY_BLOCK_BYTES));
          } catch (error) {
            await blocks.cancel(error).catch(() => undefined); // the client went away, or the slice failed
            throw error;
          } finally {
            writer.releaseLock();
          }
        }
        await writable.close();
      } catch (error) {
        await writable.abort(error).catch(() => undefined);
        // The slice read ahead is still fetched and stored (its lock released) while this request lives.
        await next?.then((b) => b.cancel(), () => undefined);
      }
    };
    // One waitUntil per answer, not per slice: workerd keeps what each one holds until the request ends.
    this.waitUntil(run());
    return readable;
  }

  /** Drops a first slice that no body took (an answer without one). */
  dispose() {
    void this.first?.body.cancel();
    this.first = undefined;
  }

  /** Bytes `from`..`to` of slice `index`: from the store, fetched into it first when missing. */
  private async open(index: number, from: number, to: number): Promise<ReadableStream<Uint8Array>> {
    const key = this.key(index);
    const coalescer = this.e.coalescer;
    let waits = 0;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const mine = this.writing.get(index);
      if (mine) {
        this.writing.delete(index);
        await mine;
      }
      const mark = coalescer.mark();
      const body = await this.read(index, from, to);
      if (body) return body;
      const claim = await coalescer.claim(key, mark, this.waitUntil);
      if (claim === "changed") continue;
      if (claim === "held") {
        // A fetch that stalled is followed by another request's fresh one: wait for that too, not for a third.
        if (waits === MAX_WAITS) break;
        await coalescer.wait(key);
        waits++;
        continue;
      }
      this.fetched = true;
      await this.fetchSlice(index, claim);
    }
    // The store cannot keep it, or another fetch of it never ends: straight from the origin for this answer.
    this.fetched = true;
    return this.direct(from, to);
  }

  /** Bytes `from`..`to` of slice `index` from the store when it holds this version's slice, else null. */
  private async read(index: number, from: number, to: number): Promise<ReadableStream<Uint8Array> | null> {
    const store = this.e.store;
    const key = this.key(index);
    const span = this.span(index);
    const whole = from === span.start && to === span.end;
    // A range even for the whole slice: the disk store then streams the body straight from the file (its whole-entry
    // read splits the head off in JavaScript).
    const entry = store.getRange
      ? await store.getRange(key, from - span.start, to - span.start).catch(() => null)
      : await store.get(key).catch(() => null);
    if (!entry) return null;
    const meta = entry.meta;
    // A hard purge since the slice was stored removes it; a soft one does not matter (slices never go stale).
    if (meta.kind !== "slice" || !entry.body || !sliceFits(meta, this.rec.meta, index) || purgeEffect(this.e.shared.current, meta) === "hard") {
      await entry.body?.cancel();
      return null;
    }
    if (!whole && !store.getRange) return sliceStream(entry.body, from - span.start, to - span.start);
    if (store.getRange) this.stored.add(entry.body);
    return entry.body;
  }

  /** One origin request for slice `index`, stored; settles when the store has it (or refused it). */
  private fetchSlice(index: number, claim: Claim): Promise<void> {
    // Awaited by whoever opens the slice, within the answer's waitUntil (see stream): its lock is always released.
    return (async () => {
      let body: ReadableStream<Uint8Array>;
      try {
        body = await this.fetchRange(this.span(index));
      } catch (error) {
        claim.release({ fetched: false });
        throw error;
      }
      this.storeSlice(index, claim, body);
      await this.writing.get(index);
    })();
  }

  /**
   * The origin's bytes for `range` of this version (206 with exactly that Content-Range), or an error. A body that
   * stalls fails (origin_idle_timeout_ms): a slice fetch never holds its lock, or a client, longer than that.
   */
  private async fetchRange(range: ByteRange): Promise<ReadableStream<Uint8Array>> {
    const res = await originGet(this.e, this.tx, { range: `bytes=${range.start}-${range.end}`, ...versionConditions(this.rec.meta) }, true);
    const cr = res.status === 206 ? parseContentRange(res.headers.get("content-range")) : null;
    const total = cr?.total ?? Number(res.headers.get("content-length") ?? NaN);
    const version = { ...validatorsOf(res.headers), total };
    const object = { etag: this.rec.meta.etag, lastModified: this.rec.meta.lastModified, total: this.object.total };
    if (res.status === 206 && cr && !("unsatisfied" in cr) && sameVersion(object, version)) {
      const length = range.end - range.start + 1;
      const declared = res.headers.get("content-length");
      if (cr.start === range.start && cr.end === range.end && res.body && (declared === null || Number(declared) === length)) {
        // A Content-Length is held to by the runtime's HTTP framing (a short body fails); without one, count.
        return declared === null ? exactLength(res.body, length) : res.body;
      }
      await res.body?.cancel();
      throw new SliceUnavailable(`asked for bytes ${range.start}-${range.end}, the origin sent ${res.headers.get("content-range")} (${declared ?? "?"} bytes)`);
    }
    await res.body?.cancel();
    // 412 (If-Match failed), a 206 or 200 of other validators or length, 404/410/416: another version, or none.
    if (res.status === 412 || res.status === 404 || res.status === 410 || res.status === 416 || ((res.status === 206 || res.status === 200) && !sameVersion(object, version))) {
      await this.invalidate();
      throw new VersionChanged(`${res.status} ${res.headers.get("etag") ?? ""}`.trim());
    }
    throw new SliceUnavailable(`origin answered ${res.status}`);
  }

  /** Bytes `from`..`to` straight from the origin (checked like any slice), not stored. */
  private direct(from: number, to: number): Promise<ReadableStream<Uint8Array>> {
    return this.fetchRange({ start: from, end: to });
  }

  /** Stores the origin's body of slice `index` (under its claim); `writing` says when that is over. */
  private storeSlice(index: number, claim: Claim, body: ReadableStream<Uint8Array>) {
    const meta = sliceMeta(this.rec.meta, index, this.e.now());
    const done = this.e.store
      .put(this.key(index), meta, body, SLICE_TTL)
      .catch(() => undefined)
      // Released explicitly even when stored: workerd's cache.put resolves when the store refuses (413). Settles once
      // the store process knows, so this request's next claim of the slice (after a failed store) is not "held".
      .then(() => claim.release(), () => claim.release());
    claim.holdWhile(done);
    this.writing.set(index, done);
  }

  /** Deletes the record (once): the next request for the object starts over with the origin's version. */
  private invalidate(): Promise<void> {
    this.invalidated ??= this.e.store.delete(this.rec.storageKey).then(
      () => undefined,
      () => undefined,
    );
    return this.invalidated;
  }

  private readonly waitUntil = (p: Promise<unknown>) => this.tx.ctx.waitUntil(p);
}
