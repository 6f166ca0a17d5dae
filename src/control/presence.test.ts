import { describe, expect, it } from "vitest";
import type { PresenceReport } from "./messages.ts";
import { knownDown, summarize } from "./presence.ts";

const S = "2026-01-01T00:00:00Z";
const report = (edge: string, seq: number, extra: Partial<PresenceReport> = {}): [string, PresenceReport] => [
  edge,
  { edge, boot: "1-00", stream: S, seq, caughtUp: true, health: "ok", state: "running", at: 10_000, ...extra },
];

describe("summarize", () => {
  it("counts an edge as applied once its reports reach the sequence, and says why the others have not", () => {
    const reports = new Map([
      report("a", 7),
      report("b", 6),
      report("c", 9, { state: "stopped", at: 4_000 }),
      report("d", 9, { stream: "older" }),
      report("e", 3, { caughtUp: false }),
    ]);
    const s = summarize(reports, ["a", "f"], S, 7, 20_000);
    expect(s.applied).toEqual(["a", "c"]);
    expect(s.pending).toEqual([
      { edge: "b", detail: "applied up to 6, last report 10 s ago" },
      { edge: "d", detail: "on an older control stream, last report 10 s ago" },
      { edge: "e", detail: "catching up, applied up to 3, last report 10 s ago" },
      { edge: "f", detail: "has never reported to the control plane" },
    ]);
  });

  it("looks only at the targets when a purge names some", () => {
    expect(summarize(new Map([report("a", 1)]), ["a", "b"], S, 1, 0, ["a"])).toEqual({ applied: ["a"], pending: [] });
  });
});

describe("knownDown", () => {
  it("is true for an edge that never reported, stopped, or has been silent longer than silentMs; not for a live one", () => {
    expect(knownDown(undefined, 20_000, 15_000)).toBe(true);
    expect(knownDown(report("c", 9, { state: "stopped" })[1], 10_500, 15_000)).toBe(true);
    expect(knownDown(report("a", 7)[1], 25_001, 15_000)).toBe(true);
    expect(knownDown(report("a", 7)[1], 25_000, 15_000)).toBe(false);
  });
});
