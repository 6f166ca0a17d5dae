import { describe, expect, it } from "vitest";
import { LinkDirection } from "./link.ts";

/** A seeded random source (mulberry32): loss draws repeatable in a test. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("LinkDirection", () => {
  it("delivers each packet exactly delayMs after it was offered, not before", () => {
    const link = new LinkDirection<string>({ delayMs: 88, loss: 0, queuePackets: 10 });
    expect(link.offer(1000, "a")).toBe("queued");
    expect(link.offer(1010, "b")).toBe("queued");
    expect(link.due(1087)).toEqual([]);
    expect(link.nextAt()).toBe(1088);
    expect(link.due(1088)).toEqual(["a"]);
    expect(link.due(1097)).toEqual([]);
    expect(link.due(1098)).toEqual(["b"]);
    expect(link.nextAt()).toBeUndefined();
    expect(link.counters).toEqual({ passed: 2, lost: 0, overflow: 0 });
  });

  it("never reorders: a shorter delay set later waits behind packets already in flight", () => {
    const link = new LinkDirection<number>({ delayMs: 100, loss: 0, queuePackets: 10 });
    link.offer(0, 1);
    link.setShape({ delayMs: 10 });
    link.offer(5, 2); // would be due at 15, but 1 is due at 100
    expect(link.due(50)).toEqual([]);
    expect(link.due(100)).toEqual([1, 2]);
    link.offer(200, 3);
    expect(link.due(210)).toEqual([3]);
  });

  it("loses about the configured share of packets, and none at loss 0", () => {
    const link = new LinkDirection<number>({ delayMs: 0, loss: 0.1, queuePackets: 100_000 }, seeded(7));
    for (let i = 0; i < 20_000; i++) link.offer(i, i);
    const got = link.due(20_000).length;
    expect(link.counters.lost + got).toBe(20_000);
    expect(link.counters.lost / 20_000).toBeGreaterThan(0.09);
    expect(link.counters.lost / 20_000).toBeLessThan(0.11);
    const clean = new LinkDirection<number>({ delayMs: 0, loss: 0, queuePackets: 10 }, () => 0);
    expect(clean.offer(0, 1)).toBe("queued");
  });

  it("a cut link (loss 1) passes nothing", () => {
    const link = new LinkDirection<number>({ delayMs: 1, loss: 1, queuePackets: 10 }, seeded(1));
    for (let i = 0; i < 100; i++) expect(link.offer(i, i)).toBe("lost");
    expect(link.due(1000)).toEqual([]);
  });

  it("bounds what is in flight: tail drop when the queue is full", () => {
    const link = new LinkDirection<number>({ delayMs: 100, loss: 0, queuePackets: 3 });
    expect([1, 2, 3, 4].map((p) => link.offer(0, p))).toEqual(["queued", "queued", "queued", "overflow"]);
    expect(link.inFlight).toBe(3);
    expect(link.due(100)).toEqual([1, 2, 3]);
    expect(link.offer(100, 5)).toBe("queued");
    expect(link.counters.overflow).toBe(1);
  });

  it("keeps its memory bounded over a long run", () => {
    const link = new LinkDirection<number>({ delayMs: 1, loss: 0, queuePackets: 10 });
    for (let t = 0; t < 100_000; t++) {
      link.offer(t, t);
      link.due(t);
    }
    expect(link.inFlight).toBeLessThanOrEqual(2);
    expect((link as unknown as { queue: unknown[] }).queue.length).toBeLessThan(3000);
  });

  it("refuses a bad shape, naming the field", () => {
    expect(() => new LinkDirection({ delayMs: -1, loss: 0, queuePackets: 1 })).toThrow(/delayMs/);
    expect(() => new LinkDirection({ delayMs: 1, loss: 2, queuePackets: 1 })).toThrow(/loss/);
    const link = new LinkDirection({ delayMs: 1, loss: 0, queuePackets: 1 });
    expect(() => link.setShape({ queuePackets: 0 })).toThrow(/queuePackets/);
    expect(() => link.setShape({ loss: Number.NaN })).toThrow(/loss/);
  });
});
