/**
 * This process's memory for the DNS node's /metrics: resident (RSS, which counts the pages of the Node executable
 * that every Node process shares), the part private to the process (Linux: /proc/self/smaps_rollup; what another
 * process of the node really adds) and the V8 heap.
 */
import { readFileSync } from "node:fs";
import type { ProcessMemory } from "../dns/operator.ts";

/** Private_Clean + Private_Dirty of /proc/self/smaps_rollup in bytes; undefined where there is none (not Linux). */
export function privateBytes(rollup?: string): number | undefined {
  let text = rollup;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/smaps_rollup", "utf8");
    } catch {
      return undefined;
    }
  }
  let kb = 0;
  for (const m of text.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+) kB$/gm)) kb += Number(m[1]);
  return kb * 1024;
}

export function processMemory(): ProcessMemory {
  const m = process.memoryUsage();
  return { pid: process.pid, rss: m.rss, private: privateBytes(), heapUsed: m.heapUsed, heapTotal: m.heapTotal };
}
