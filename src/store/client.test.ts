/** freshRead: concurrent callers share reads, and each waits for one that started after it called. */
import { describe, expect, it, vi } from "vitest";
import { freshRead } from "./client.ts";

describe("freshRead", () => {
  it("a caller that arrives during a read waits for the next one; callers arriving together share it", async () => {
    const started: (() => void)[] = [];
    const read = freshRead(() => new Promise<void>((r) => started.push(r)));
    const first = read();
    expect(started.length).toBe(1);
    let secondDone = false;
    let thirdDone = false;
    const second = read().then(() => void (secondDone = true));
    const third = read().then(() => void (thirdDone = true));
    expect(started.length).toBe(1); // one read at a time
    started[0]!();
    await first;
    await Promise.resolve();
    expect(secondDone || thirdDone).toBe(false); // the first read started before they called
    await new Promise((r) => setImmediate(r));
    expect(started.length).toBe(2); // one more read for both
    started[1]!();
    await Promise.all([second, third]);
    expect(started.length).toBe(2);
  });

  it("a failed read rejects its callers and does not stop the next", async () => {
    let n = 0;
    const read = freshRead(async () => {
      if (n++ === 0) throw new Error("store away");
    });
    await expect(read()).rejects.toThrow("store away");
    await expect(read()).resolves.toBeUndefined();
  });
  it("a read that never settles (its request ended, on workerd) holds the others at most patienceMs", async () => {
    vi.useFakeTimers();
    try {
      let reads = 0;
      const read = freshRead(() => (reads++ === 0 ? new Promise<void>(() => {}) : Promise.resolve()), 1000);
      void read(); // hangs forever
      let done = false;
      const next = read().then(() => void (done = true));
      await vi.advanceTimersByTimeAsync(999);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await next;
      expect(reads).toBe(2); // it read itself
      await read(); // and later callers are not held by the hung one either
      expect(reads).toBe(3);
    } finally {
      vi.useRealTimers();
    }
  });
});
