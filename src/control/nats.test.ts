import { afterEach, describe, expect, it, vi } from "vitest";
import { retryOpening } from "./nats.ts";

describe("retryOpening", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("tries again after 250 ms, doubling up to 5 s, until it opens; each failure is told", async () => {
    vi.useFakeTimers();
    const tries: number[] = [];
    const failures: string[] = [];
    const opened = retryOpening(
      async () => {
        tries.push(Date.now());
        if (tries.length < 7) throw new Error(`no ${tries.length}`);
      },
      () => false,
      (err) => failures.push(err.message),
    );
    await vi.runAllTimersAsync();
    expect(await opened).toBe(true);
    expect(tries.slice(1).map((t, i) => t - tries[i]!)).toEqual([250, 500, 1000, 2000, 4000, 5000]);
    expect(failures).toEqual(["no 1", "no 2", "no 3", "no 4", "no 5", "no 6"]);
  });

  it("gives up once stopped, without another try", async () => {
    vi.useFakeTimers();
    let stopped = false;
    let tries = 0;
    const opened = retryOpening(
      async () => {
        tries++;
        stopped = true; // stopped while this try ran
        throw new Error("down");
      },
      () => stopped,
      () => {},
    );
    await vi.runAllTimersAsync();
    expect([await opened, tries]).toEqual([false, 1]);
  });
});
