import { expect, it } from "vitest";
import { privateBytes, processMemory } from "./process-memory.ts";

it("adds the private clean and dirty pages of smaps_rollup", () => {
  const rollup = "Rss:               80000 kB\nPss:               33000 kB\nShared_Clean:      50000 kB\nPrivate_Clean:       140 kB\nPrivate_Dirty:     29860 kB\n";
  expect(privateBytes(rollup)).toBe(30000 * 1024);
});

it("reads this process's memory", () => {
  const m = processMemory();
  expect(m.pid).toBe(process.pid);
  expect(m.rss).toBeGreaterThan(m.private!);
  expect(m.heapTotal).toBeGreaterThanOrEqual(m.heapUsed);
});
