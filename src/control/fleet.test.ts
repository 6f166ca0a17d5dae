import { describe, expect, it } from "vitest";
import { boxConfigText } from "./fleet-config.ts";
import { HealthWindow, judgeCanaries, parseRecord, pickCanaries, RolloutSchema, targetVersion, type BoxStatus, type RolloutRecord } from "./fleet.ts";
import { parseConfig } from "../config/config.ts";

const record = (over: Partial<RolloutRecord> = {}): RolloutRecord => ({
  v: 1,
  version: 4,
  previous: 3,
  stage: "canary",
  canaries: ["b"],
  window_ms: 1000,
  probe_path: "/",
  probe_timeout_ms: 3000,
  reason: "",
  at: 1000,
  by: "op",
  ...over,
});
const status = (box: string, over: Partial<BoxStatus>): BoxStatus => ({ v: 1, box, version: 3, target: 4, state: "applying", reason: "", at: 2000, ...over });

describe("targetVersion", () => {
  it("gives canaries the new version in the canary stage, everyone in the all stage, and the one before once rolled back", () => {
    expect(targetVersion(undefined, "a")).toBe(0);
    expect(targetVersion(record(), "b")).toBe(4);
    expect(targetVersion(record(), "a")).toBe(3);
    expect(targetVersion(record({ stage: "all" }), "a")).toBe(4);
    expect(targetVersion(record({ stage: "rolled-back" }), "b")).toBe(3);
  });
});

describe("pickCanaries", () => {
  it("takes the named boxes (known ones only) or the first ceil(f × n) live boxes by name, at least one", () => {
    expect(pickCanaries(["c", "a", "b"], ["a", "b", "c"], {})).toEqual(["a"]);
    expect(pickCanaries(["c", "a", "b"], ["a", "b", "c"], { fraction: 0.5 })).toEqual(["a", "b"]);
    expect(pickCanaries([], ["a", "b"], { names: ["b", "b"] })).toEqual(["b"]);
    expect(() => pickCanaries(["a"], ["a"], { names: ["x"] })).toThrow(/no box named x/);
    expect(() => pickCanaries([], ["a"], {})).toThrow(/no box has reported/);
  });
});

describe("judgeCanaries", () => {
  const r = record({ canaries: ["a", "b"] });
  it("waits until every canary ran the version through its window, then promotes", () => {
    const s = new Map([["a", status("a", { state: "applied", version: 4 })], ["b", status("b", { state: "checking", version: 4 })]]);
    expect(judgeCanaries(r, s, 3000, 10_000)).toEqual({ decision: "wait", waiting: ["b"] });
    s.set("b", status("b", { state: "applied", version: 4 }));
    expect(judgeCanaries(r, s, 3000, 10_000)).toEqual({ decision: "promote" });
  });
  it("rolls back at once when a canary refused or rolled back, and when one is silent past the deadline", () => {
    const s = new Map([["a", status("a", { state: "rolled-back", reason: "health regressed: origin x does not answer" })]]);
    expect(judgeCanaries(r, s, 3000, 10_000)).toEqual({ decision: "rollback", reason: "canary a rolled back version 4: health regressed: origin x does not answer" });
    expect(judgeCanaries(r, new Map([["a", status("a", { state: "refused", reason: "edge.origin: bad" })]]), 3000, 10_000)).toMatchObject({ decision: "rollback", reason: expect.stringMatching(/canary a refused version 4: edge.origin: bad/) });
    expect(judgeCanaries(r, new Map(), 10_001, 10_000)).toMatchObject({ decision: "rollback", reason: expect.stringMatching(/canary a \(never reported\), b \(never reported\) did not confirm version 4 in time/) });
  });
  it("ignores what a canary said before this rollout (an older report about the same version)", () => {
    const s = new Map([["a", status("a", { state: "rolled-back", at: 500 })], ["b", status("b", { state: "applied", version: 4, at: 500 })]]);
    expect(judgeCanaries(r, s, 3000, 10_000)).toEqual({ decision: "wait", waiting: ["a", "b"] });
  });
});

describe("HealthWindow", () => {
  it("passes once the window has lasted with good checks; one failure is forgiven, two in a row are a regression", () => {
    const w = new HealthWindow(0, 1000);
    expect(w.record(undefined, 250)).toEqual({ verdict: "pending" });
    expect(w.record("origin x does not answer", 500)).toEqual({ verdict: "pending" });
    expect(w.record(undefined, 750)).toEqual({ verdict: "pending" });
    expect(w.record(undefined, 1000)).toEqual({ verdict: "pass" });
    const bad = new HealthWindow(0, 1000);
    bad.record("origin x does not answer", 250);
    expect(bad.record("origin x does not answer", 500)).toEqual({ verdict: "fail", reason: "origin x does not answer" });
  });
});

describe("records", () => {
  it("refuse a malformed rollout record, naming the key and field", () => {
    expect(() => parseRecord(RolloutSchema, "rollout", JSON.stringify({ ...record(), stage: "half" }))).toThrow(/fleet: rollout is malformed: stage/);
    expect(() => parseRecord(RolloutSchema, "rollout", "{")).toThrow(/not JSON/);
  });
});

describe("boxConfigText", () => {
  const shared = `[edge]\norigin = "http://two.example"\nname = "shared"\nstore_dir = "/shared"\n\n[admin]\ntoken = "shared-token-0123456789"\n\n[[rules]]\npath = "/a/*"\n`;
  const local = `[edge]\nname = "eu-lon"\nstore_dir = "/var/lib/parrot"\norigin = "http://one.example"\n\n[control]\nservers = ["nats://n1:4222"]\nfleet = true\n`;
  it("keeps the fleet's shared tables and the box's own fields and tables", () => {
    const c = parseConfig(boxConfigText(shared, local));
    expect(c.edge).toMatchObject({ name: "eu-lon", store_dir: "/var/lib/parrot", origin: "http://two.example" });
    expect(c.rules.map((r) => r.path)).toEqual(["/a/*"]);
    expect(c.control?.fleet).toBe(true);
    // [admin] is the box's own: the shared file's token does not replace it (here: none).
    expect(c.admin.token).toBeUndefined();
  });
  it("keeps the box's region (regional shields) from its own file, never the shared one's", () => {
    expect(parseConfig(boxConfigText(`${shared.replace('name = "shared"', 'name = "shared"\nregion = "us"')}`, local.replace('name = "eu-lon"', 'name = "eu-lon"\nregion = "eu"'))).edge?.region).toBe("eu");
    expect(parseConfig(boxConfigText(shared.replace('name = "shared"', 'name = "shared"\nregion = "us"'), local)).edge?.region).toBeUndefined();
  });
  it("says which text has a TOML error", () => {
    expect(() => boxConfigText("[edge", local)).toThrow(/the fleet version: TOML syntax/);
    expect(() => boxConfigText(shared, "x = ")).toThrow(/the box's own file: TOML syntax/);
  });
});
