/**
 * Bodies that must keep coming (origin_idle_timeout_ms): a read that waits longer than the limit for its block (1 MiB,
 * or the body's end) fails the body with OriginIdle and cancels its source, which closes the origin's connection.
 * Only reads count: a consumer slow to ask (the store, a client) makes nothing idle.
 *
 * Used for slice fetches, which hold their lock while their body goes into the store: a stalled one would keep every
 * request for that slice waiting. The store cannot do it: workerd's cache.put waits for its upload's source, whatever
 * the store answers. The cost is JavaScript once per block between the origin and the store (docs/mirrors.md).
 */
import { readBlock } from "../store/integrity.ts";

/** Bytes read at a time: JavaScript runs once per block (workerd's readAtLeast), not once per network chunk. */
export const IDLE_BLOCK_BYTES = 1024 * 1024;

/** The body brought nothing for origin_idle_timeout_ms: it was given up. */
export class OriginIdle extends Error {
  constructor(ms: number) {
    super(`the origin's body stalled for ${ms} ms`);
    this.name = "OriginIdle";
  }
}

/** `body`, failed with OriginIdle when a read waits longer than `ms` (0: as it is). */
export function idleLimited(body: ReadableStream<Uint8Array>, ms: number): ReadableStream<Uint8Array> {
  if (!ms) return body;
  // Blocks where the runtime reads them natively (workerd's readAtLeast); chunk by chunk elsewhere (Node).
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
    if (!("readAtLeast" in (byob as object))) {
      byob.releaseLock();
      byob = undefined;
    }
  } catch {
    byob = undefined; // not a byte stream
  }
  const reader = byob ?? body.getReader();
  const next = async (): Promise<Uint8Array> => {
    if (byob) return readBlock(byob, IDLE_BLOCK_BYTES);
    const r = await (reader as ReadableStreamDefaultReader<Uint8Array>).read();
    return r.done ? new Uint8Array(0) : r.value;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new OriginIdle(ms)), ms);
      });
      try {
        const block = await Promise.race([next(), idle]);
        if (block.byteLength) controller.enqueue(block);
        else controller.close();
      } catch (err) {
        if (err instanceof OriginIdle) void reader.cancel(err).catch(() => undefined); // closes the origin's connection
        controller.error(err);
      } finally {
        clearTimeout(timer);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
