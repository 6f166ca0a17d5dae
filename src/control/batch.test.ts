import { afterEach, describe, expect, it, vi } from "vitest";
import { batches } from "./batch.ts";

/** An async source fed by the test. */
function source<T>() {
  const queue: T[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  return {
    push(...items: T[]) {
      queue.push(...items);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (queue.length) yield queue.shift()!;
        if (ended) return;
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
}

describe("batches", () => {
  afterEach(() => vi.useRealTimers());

  it("takes every message already waiting into one batch (a running consumer's messages each arrive with nothing pending)", async () => {
    vi.useFakeTimers();
    const s = source<{ seq: number; pending: number }>();
    s.push(...Array.from({ length: 5 }, (_, i) => ({ seq: i + 1, pending: 0 })));
    const it = batches(s, { max: 100, idleMs: 5, maxWaitMs: 50 });
    const first = it.next();
    await vi.advanceTimersByTimeAsync(5);
    expect((await first).value!.map((m: { seq: number }) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    s.end();
    expect((await it.next()).done).toBe(true);
  });

  it("keeps a batch open while messages keep coming within idleMs, at most maxWaitMs", async () => {
    vi.useFakeTimers();
    const s = source<{ seq: number }>();
    const it = batches(s, { max: 100, idleMs: 5, maxWaitMs: 20 });
    const first = it.next();
    let done = false;
    void first.then(() => (done = true));
    for (let seq = 1; seq <= 9; seq++) {
      s.push({ seq });
      await vi.advanceTimersByTimeAsync(3);
    }
    expect(done).toBe(true);
    const got = (await first).value!.map((m: { seq: number }) => m.seq);
    // The first message at 0 ms, one every 3 ms: the batch closes at 20 ms with those that came by then.
    expect(got).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const second = it.next();
    await vi.advanceTimersByTimeAsync(10);
    expect((await second).value!.map((m: { seq: number }) => m.seq)).toEqual([8, 9]);
  });

  it("ends a batch at the size limit", async () => {
    const s = source<{ seq: number }>();
    s.push(...Array.from({ length: 5 }, (_, i) => ({ seq: i + 1 })));
    s.end();
    const out: number[][] = [];
    for await (const b of batches(s, { max: 2, idleMs: 1000, maxWaitMs: 1000 })) out.push(b.map((m) => m.seq));
    expect(out).toEqual([[1, 2], [3, 4], [5]]);
  });

  it("does not hold a partial batch when messages stop coming", async () => {
    vi.useFakeTimers();
    const s = source<{ seq: number }>();
    s.push({ seq: 1 });
    const it = batches(s, { max: 100, idleMs: 20, maxWaitMs: 100 });
    const first = it.next();
    await vi.advanceTimersByTimeAsync(20);
    expect((await first).value!.map((m: { seq: number }) => m.seq)).toEqual([1]);
    s.push({ seq: 2 });
    const second = it.next();
    await vi.advanceTimersByTimeAsync(20);
    expect((await second).value!.map((m: { seq: number }) => m.seq)).toEqual([2]);
    s.end();
    expect((await it.next()).done).toBe(true);
  });
});
