/**
 * A body copied into one of workerd's own pipes (a FixedLengthStream) through one buffer of the copy's own: a BYOB
 * read (workerd's readAtLeast) fills the buffer a block at a time and hands it back, and a write into such a pipe
 * settles only once its reader took the bytes, so the buffer is then filled again. One block of memory per copy
 * however long the body. `pipeTo` with `preventClose` (how slices were stitched) instead left ArrayBuffers per chunk
 * for V8, which collects them only after tens of MB piled up in the isolate; the allocator then keeps the pages.
 */

/** Bytes read and written at a time: JavaScript runs once per block, not once per network chunk. */
export const COPY_BLOCK_BYTES = 1024 * 1024;

export type BlockReader = ReadableStreamBYOBReader & {
  readAtLeast<T extends ArrayBufferView>(min: number, view: T): Promise<ReadableStreamReadResult<T>>;
};

/**
 * A block reader of `body` where a copy through one buffer is safe (workerd: readAtLeast, and a FixedLengthStream from
 * lengthStream, whose writes settle once read); undefined elsewhere (Node: a JavaScript TransformStream's write
 * settles once queued), the body then left unlocked.
 */
export function blockReader(body: ReadableStream<Uint8Array>): BlockReader | undefined {
  if (typeof FixedLengthStream !== "function") return undefined;
  try {
    const reader = body.getReader({ mode: "byob" });
    if ("readAtLeast" in (reader as object)) return reader as BlockReader;
    reader.releaseLock();
  } catch {
    // not a byte stream
  }
  return undefined;
}

/**
 * Copies what `reader` reads into `writer` (a native pipe's), a block at a time through `buffer`, and returns the
 * buffer for the next copy. The writer is left open.
 */
export async function copyBlocks(reader: BlockReader, writer: WritableStreamDefaultWriter<Uint8Array>, buffer: ArrayBuffer): Promise<ArrayBuffer> {
  const size = buffer.byteLength;
  for (;;) {
    const { done, value: block } = await reader.readAtLeast(size, new Uint8Array(buffer));
    if (block?.byteLength) await writer.write(block); // settles once the pipe's reader took the bytes
    // The read handed the buffer back (transferred); a write that kept it (detached) costs a new one.
    if (block) buffer = block.buffer.byteLength ? (block.buffer as ArrayBuffer) : new ArrayBuffer(size);
    if (done || !block) return buffer;
  }
}
