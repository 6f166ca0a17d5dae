import { afterEach, describe, expect, it, vi } from "vitest";
import { idleLimited, OriginIdle } from "./idle.ts";

afterEach(() => void vi.useRealTimers());

/** A source that sends `chunks`, then nothing until cancelled (which it records). */
function stalling(chunks: Uint8Array[]) {
  const seen = { cancelled: false };
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull: (c) => (i < chunks.length ? c.enqueue(chunks[i++]!) : new Promise<void>(() => {})),
    cancel: () => void (seen.cancelled = true),
  });
  return { body, seen };
}

describe("bodies that must keep coming", () => {
  it("a body that stalls fails with OriginIdle after the limit and its source is cancelled", async () => {
    vi.useFakeTimers();
    const { body, seen } = stalling([new Uint8Array(10)]);
    const reader = idleLimited(body, 1_000).getReader();
    expect((await reader.read()).value?.byteLength).toBe(10);
    const next = reader.read();
    next.catch(() => undefined);
    await vi.advanceTimersByTimeAsync(999);
    expect(seen.cancelled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await expect(next).rejects.toBeInstanceOf(OriginIdle);
    expect(seen.cancelled).toBe(true);
  });

  it("only reads count: a consumer that waits longer than the limit between reads fails nothing", async () => {
    vi.useFakeTimers();
    const chunks = [new Uint8Array(1), new Uint8Array(2), new Uint8Array(3)];
    const body = new ReadableStream<Uint8Array>({ pull: (c) => (chunks.length ? c.enqueue(chunks.shift()!) : c.close()) });
    const reader = idleLimited(body, 1_000).getReader();
    const sizes: number[] = [];
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      sizes.push(r.value.byteLength);
      await vi.advanceTimersByTimeAsync(5_000); // the consumer is slow to ask
    }
    expect(sizes).toEqual([1, 2, 3]);
  });

  it("a limit of 0 leaves the body as it is", () => {
    const { body } = stalling([]);
    expect(idleLimited(body, 0)).toBe(body);
  });
});
