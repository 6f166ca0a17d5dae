import { describe, expect, it } from "vitest";
import type { PresenceReport } from "./messages.ts";
import { describeHeartbeat, heartbeatProblem, knownDown, summarize } from "./presence.ts";

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

describe("heartbeatProblem", () => {
  const r = report("a", 1)[1];
  it("counts a box down when it said it stopped or went silent, once the node has heard the control plane that long", () => {
    expect(heartbeatProblem(r, 0, 11_000, 1_250)).toBeUndefined();
    expect(heartbeatProblem(r, 0, 11_300, 1_250)).toBe("no heartbeat for 1.3 s (control plane)");
    expect(heartbeatProblem({ ...r, state: "stopped" }, 0, 10_000, 1_250)).toMatch(/^its agent reported it stopped 0 s ago/);
  });
  it("says nothing of a box that never reported, nor while the node is deaf or has just (re)connected", () => {
    expect(heartbeatProblem(undefined, 0, 60_000, 1_250)).toBeUndefined();
    expect(heartbeatProblem(r, undefined, 60_000, 1_250)).toBeUndefined();
    expect(heartbeatProblem(r, 59_000, 60_000, 1_250)).toBeUndefined();
    expect(heartbeatProblem(r, 58_000, 60_000, 1_250)).toMatch(/no heartbeat for 50\.0 s/);
  });
});

describe("describeHeartbeat", () => {
  it("says the box's health (its drain), its anycast announcement and the heartbeat's age", () => {
    expect(describeHeartbeat(report("a", 1, { health: "draining", anycast: "withdrawn" })[1], 10_400)).toBe("draining, withdrawn, 0.4 s ago");
    expect(describeHeartbeat(report("a", 1)[1], 12_000)).toBe("ok, 2.0 s ago");
    expect(describeHeartbeat(report("a", 1, { state: "stopped" })[1], 13_000)).toBe("stopped 3.0 s ago");
    expect(describeHeartbeat(undefined, 13_000)).toBeUndefined();
  });
});
