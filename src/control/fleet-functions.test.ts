import { describe, expect, it } from "vitest";
import { judgeCanaries } from "./fleet.ts";
import { functionProblem, functionTarget, FunctionWindow, previousOf, settledVersion, type FunctionCurrent, type FunctionFigures } from "./fleet-functions.ts";

const record = (over: Partial<FunctionCurrent> = {}): FunctionCurrent => ({
  v: 1,
  id: "www",
  version: "v3",
  previous: "v2",
  stage: "canary",
  canaries: ["eu-lon"],
  window_ms: 10_000,
  max_error_rate: 0.01,
  at: 1_000,
  by: "test",
  ...over,
});

describe("a function version's stages (the fleet's canary notion)", () => {
  it("canaries run the new version, the others the one before; all: every box; rolled back: the one before", () => {
    expect(functionTarget(record(), "eu-lon")).toBe("v3");
    expect(functionTarget(record(), "na-sea")).toBe("v2");
    expect(functionTarget(record({ stage: "all" }), "na-sea")).toBe("v3");
    expect(functionTarget(record({ stage: "rolled-back" }), "eu-lon")).toBe("v2");
    // The first deploy: the others keep their module (v0).
    expect(functionTarget(record({ previous: "v0" }), "na-sea")).toBe("v0");
    // A record written before stages existed: every box runs it.
    expect(functionTarget({ v: 1, id: "www", version: "v3", at: 1, by: "x" }, "na-sea")).toBe("v3");
  });
  it("what the boxes run once a rollout is over, and what a rollback goes to", () => {
    expect(settledVersion(record())).toBe("v2");
    expect(settledVersion(record({ stage: "all" }))).toBe("v3");
    expect(settledVersion(undefined)).toBe("v0");
    const versions = ["v1", "v2", "v3"].map((version) => ({ version, at: "", from: "", bytes: 1 }));
    expect(previousOf(versions, "v3", record({ stage: "rolled-back" }))).toBe("v2");
    expect(previousOf(versions, "v3", record({ stage: "all", previous: "v1" }))).toBe("v2");
  });
  it("the coordinator promotes once every canary applied it, rolls back when one rolled it back", () => {
    const judged = { version: 3, canaries: ["eu-lon"], at: 1_000 };
    const state = (state: "checking" | "applied" | "rolled-back", version: number) => new Map([["eu-lon", { version, target: 3, state, reason: "why", at: 2_000 }]]);
    expect(judgeCanaries(judged, state("checking", 3), 3_000, 20_000).decision).toBe("wait");
    expect(judgeCanaries(judged, state("applied", 3), 3_000, 20_000).decision).toBe("promote");
    expect(judgeCanaries(judged, state("rolled-back", 2), 3_000, 20_000)).toEqual({ decision: "rollback", reason: "canary eu-lon rolled back version 3: why" });
  });
});

describe("a canary's window over a function version", () => {
  const figures = (over: Partial<FunctionFigures> = {}): FunctionFigures => ({ version: "v3", requests: 0, threw: 0, restarts: 0, kills: 0, ...over });

  it("exceptions over requests above max_error_rate, a process that ended, another version: problems", () => {
    const base = figures({ requests: 100, threw: 1 });
    expect(functionProblem(base, figures({ requests: 200, threw: 2 }), 0.01)).toBeUndefined();
    expect(functionProblem(base, figures({ requests: 200, threw: 3 }), 0.01)).toBe("it threw on 2 of 100 requests (above max_error_rate 0.01)");
    expect(functionProblem(base, figures({ requests: 100, threw: 1 }), 0)).toBeUndefined(); // no request: nothing to judge
    expect(functionProblem(base, figures({ requests: 100, threw: 1, restarts: 1, kills: 1 }), 0.5)).toMatch(/^its process ended 1 time\(s\) \(1 watchdog kill/);
    expect(functionProblem(base, figures({ version: "v2" }), 1)).toBe("it runs v2, not v3");
    expect(functionProblem(base, undefined, 1)).toBe("the box does not run the function");
  });

  it("passes once the window has lasted with good readings; fails on two bad readings in a row (fake clock)", () => {
    let now = 0;
    const good = new FunctionWindow(now, 1_000, 0.01, figures());
    expect(good.record(figures({ requests: 5 }), undefined, (now += 250)).verdict).toBe("pending");
    expect(good.record(figures({ requests: 9 }), undefined, (now += 750)).verdict).toBe("pass");

    now = 0;
    const bad = new FunctionWindow(now, 1_000, 0.01, figures());
    expect(bad.record(figures({ requests: 2, threw: 2 }), undefined, (now += 250)).verdict).toBe("pending");
    expect(bad.record(figures({ requests: 4, threw: 4 }), undefined, (now += 250))).toEqual({ verdict: "fail", reason: "it threw on 4 of 4 requests (above max_error_rate 0.01)" });

    now = 0;
    const edgeDown = new FunctionWindow(now, 1_000, 0.01, figures());
    edgeDown.record(figures(), "the edge's health answers 503", (now += 250));
    expect(edgeDown.record(figures(), "the edge's health answers 503", (now += 250))).toEqual({ verdict: "fail", reason: "the edge's health answers 503" });
  });
});
