import { describe, expect, it } from "vitest";
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

const pendingAfter = (m: { pending: number }) => m.pending === 0;

describe("batches", () => {
  it("ends a batch at the message after which nothing is pending", async () => {
    const s = source<{ seq: number; pending: number }>();
    s.push({ seq: 1, pending: 2 }, { seq: 2, pending: 1 }, { seq: 3, pending: 0 }, { seq: 4, pending: 0 });
    s.end();
    const out: number[][] = [];
    for await (const b of batches(s, { complete: pendingAfter, max: 100, idleMs: 1000 })) out.push(b.map((m) => m.seq));
    expect(out).toEqual([[1, 2, 3], [4]]);
  });

  it("ends a batch at the size limit", async () => {
    const s = source<{ seq: number; pending: number }>();
    s.push(...Array.from({ length: 5 }, (_, i) => ({ seq: i + 1, pending: 10 })));
    s.end();
    const out: number[][] = [];
    for await (const b of batches(s, { complete: pendingAfter, max: 2, idleMs: 1000 })) out.push(b.map((m) => m.seq));
    expect(out).toEqual([[1, 2], [3, 4], [5]]);
  });

  it("does not hold a partial batch when messages stop coming", async () => {
    const s = source<{ seq: number; pending: number }>();
    s.push({ seq: 1, pending: 5 });
    const it = batches(s, { complete: pendingAfter, max: 100, idleMs: 20 });
    expect((await it.next()).value!.map((m: { seq: number }) => m.seq)).toEqual([1]);
    s.push({ seq: 2, pending: 0 });
    expect((await it.next()).value!.map((m: { seq: number }) => m.seq)).toEqual([2]);
    s.end();
    expect((await it.next()).done).toBe(true);
  });
});
