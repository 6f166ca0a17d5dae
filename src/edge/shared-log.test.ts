import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PURGE_LOG_KEY } from "../contracts/store.ts";
import { PeriodicRead, SharedLog, StoreLogSequence } from "./shared-log.ts";
import { MemoryStore } from "./store.ts";

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

describe("a process's copy of the log against the store's sequence (several processes)", () => {
  /** A store whose reads carry `seq` (as the disk store's answers do) and fail while `down`. */
  function setup() {
    const store = new MemoryStore();
    const sequence = new StoreLogSequence();
    const state = { seq: "s.0", down: false, logReads: 0 };
    const log = new SharedLog(
      {
        async get(key) {
          if (key === PURGE_LOG_KEY) state.logReads++;
          if (state.down) throw new Error("store away");
          const found = await store.get(key);
          sequence.see(state.seq);
          return found;
        },
        put: (...a) => store.put(...a),
        delete: (k) => store.delete(k),
      },
      sequence,
    );
    return { log, sequence, state };
  }

  it("is behind once an answer tells of a newer store of the log, and caught up by one read that started after", async () => {
    const { log, sequence, state } = setup();
    expect(log.behind).toBe(false); // nothing heard yet
    sequence.see("s.0");
    expect(log.behind).toBe(true);
    await log.catchUp();
    expect([log.behind, state.logReads]).toEqual([false, 1]);
    sequence.see("s.0"); // the same: no read
    await log.catchUp();
    expect(state.logReads).toBe(1);
    sequence.see("s.3");
    sequence.see("s.2"); // an older answer arriving late does not lower it
    expect(log.behind).toBe(true);
    state.seq = "s.3";
    // The first caller reads; those that came while it read share the next one (it started after them).
    await Promise.all([log.catchUp(), log.catchUp(), log.catchUp()]);
    expect([log.behind, state.logReads]).toEqual([false, 3]);
  });

  it("another store process (restarted) counts again: behind until read from it; an unreadable log throws", async () => {
    const { log, sequence, state } = setup();
    sequence.see("s.5");
    state.seq = "s.5";
    await log.catchUp();
    sequence.see("t.0");
    expect(log.behind).toBe(true);
    state.down = true;
    await expect(log.catchUp()).rejects.toThrow();
    expect(log.behind).toBe(true);
    state.down = false;
    state.seq = "t.0";
    await log.catchUp();
    expect(log.behind).toBe(false);
    sequence.see("garbage");
    expect(log.behind).toBe(false);
  });
});
