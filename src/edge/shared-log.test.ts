import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PeriodicRead } from "./shared-log.ts";

describe("reads of the box's shared state, at most once a second", () => {
  let started: number[];
  let finish: (() => void)[];
  let reads: PeriodicRead;
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(0);
    started = [];
    finish = [];
    reads = new PeriodicRead(() => {
      started.push(Date.now());
      return new Promise<void>((r) => finish.push(r));
    });
  });
  afterEach(() => vi.useRealTimers());

  it("requests within a second of a read's start share it", async () => {
    const a = reads.run();
    vi.setSystemTime(500);
    const b = reads.run();
    expect(started).toEqual([0]);
    finish[0]!();
    await Promise.all([a, b]);
    expect(reads.due).toBe(false);
  });

  it("a read counts from when it started: due a second after its start, however long it took", async () => {
    const a = reads.run();
    vi.setSystemTime(900);
    finish[0]!();
    await a;
    expect(reads.due).toBe(false);
    vi.setSystemTime(1000);
    expect(reads.due).toBe(true); // what was stored at 0.5 s may have been missed by the read started at 0
  });

  it("a read under way that started more than a second ago is not enough: another starts beside it", async () => {
    const slow = reads.run();
    vi.setSystemTime(1500);
    const next = reads.run();
    expect(started).toEqual([0, 1500]);
    finish[1]!();
    await next;
    expect(reads.due).toBe(false);
    finish[0]!(); // the older read ending later does not move the mark back
    await slow;
    vi.setSystemTime(2400);
    expect(reads.due).toBe(false);
  });

  it("a fresh read starts now even when one is under way and none is due", async () => {
    const a = reads.run();
    finish[0]!();
    await a;
    const b = reads.run();
    vi.setSystemTime(100);
    const c = reads.run(true);
    expect(started).toEqual([0, 100]);
    finish[1]!();
    await Promise.all([b, c]);
  });
});
