/** Slots: at most `max` holders, waiters in arrival order, and a slot never given back frees itself after a lease. */
import { describe, expect, it, vi } from "vitest";
import { Slots } from "./slots.ts";

describe("Slots", () => {
  it("holds at most max at once; the others wait in arrival order", async () => {
    const slots = new Slots(2);
    const a = await slots.acquire();
    const b = await slots.acquire();
    const order: string[] = [];
    const c = slots.acquire().then((r) => (order.push("c"), r));
    const d = slots.acquire().then((r) => (order.push("d"), r));
    await Promise.resolve();
    expect([slots.busy, slots.queued, order]).toEqual([2, 2, []]);
    a();
    a(); // a second call gives nothing back twice
    const rc = await c;
    expect([slots.busy, slots.queued, order]).toEqual([2, 1, ["c"]]);
    b();
    const rd = await d;
    expect(order).toEqual(["c", "d"]);
    rc();
    rd();
    expect(slots.busy).toBe(0);
  });

  it("a slot not given back within its lease counts as free (a cancelled request never stops the store)", async () => {
    vi.useFakeTimers();
    try {
      let now = 0;
      const slots = new Slots(1, { leaseMs: 30_000, now: () => now });
      await slots.acquire(); // never released
      let got = false;
      const next = slots.acquire().then((r) => ((got = true), r));
      now = 29_000;
      await vi.advanceTimersByTimeAsync(29_000);
      expect(got).toBe(false);
      now = 30_000;
      await vi.advanceTimersByTimeAsync(1_000);
      (await next)();
      expect(got).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});
