import { describe, expect, it } from "vitest";
import { afterProbe, answerable, initialHealth, inService, parseAnycast, type EdgeHealth, type ProbeResult } from "./health.ts";

const s = { downAfter: 3, upAfter: 2 };
const ok: ProbeResult = { kind: "ok" };
const bad: ProbeResult = { kind: "failed", detail: "connection refused" };
const run = (h: EdgeHealth, ...results: ProbeResult[]) => results.reduce((acc, r, i) => afterProbe(acc, r, s, i + 1), h);

describe("edge health hysteresis", () => {
  it("decides on the first probe after a start, trusting no earlier state", () => {
    expect(run(initialHealth(0), ok).state).toBe("up");
    expect(run(initialHealth(0), bad).state).toBe("down");
  });

  it("goes down only after downAfter failures in a row", () => {
    const up = run(initialHealth(0), ok);
    expect(run(up, bad, bad).state).toBe("up");
    expect(run(up, bad, bad, ok, bad, bad).state).toBe("up");
    expect(run(up, bad, bad, bad).state).toBe("down");
  });

  it("comes back only after upAfter successes in a row", () => {
    const down = run(initialHealth(0), bad);
    expect(run(down, ok).state).toBe("down");
    expect(run(down, ok, bad, ok).state).toBe("down");
    expect(run(down, ok, ok).state).toBe("up");
  });

  it("leaves answers at once when the edge says it is draining, and returns when it says ok", () => {
    const up = run(initialHealth(0), ok);
    const draining = run(up, { kind: "draining" });
    expect(draining.state).toBe("draining");
    expect(inService(draining)).toBe(false);
    expect(run(draining, ok).state).toBe("up");
  });

  it("keeps operator-drained edges out whatever the probes say", () => {
    expect(inService(run(initialHealth(0, true), ok))).toBe(false);
  });
});

describe("answerable edges", () => {
  const edges = [{ name: "a" }, { name: "b" }, { name: "c" }];
  const states: Record<string, EdgeHealth> = {
    a: run(initialHealth(0), ok),
    b: run(initialHealth(0), bad),
    c: run(initialHealth(0), ok),
  };
  it("drops edges that are down", () => {
    expect(answerable(edges, (n) => states[n], 1)).toEqual({ edges: [{ name: "a" }, { name: "c" }], failOpen: false });
  });

  it("fails open with every edge when too few are up", () => {
    const allDown = (n: string) => ({ ...states[n]!, state: "down" as const });
    expect(answerable(edges, allDown, 1)).toEqual({ edges, failOpen: true });
    expect(answerable(edges, (n) => states[n], 3).failOpen).toBe(true);
  });
});

describe("anycast announcement", () => {
  it("records what the last answered probe said, and forgets it when a probe gets no answer", () => {
    const announced = run(initialHealth(0), { kind: "ok", anycast: "announced" });
    expect(announced.anycast).toBe("announced");
    expect(run(announced, { kind: "draining", anycast: "withdrawn" })).toMatchObject({ state: "draining", anycast: "withdrawn" });
    expect(run(announced, { kind: "ok" }).anycast).toBeUndefined();
    expect(run(announced, bad).anycast).toBeUndefined();
    expect([parseAnycast(" Announced "), parseAnycast("withdrawn"), parseAnycast("maybe"), parseAnycast(null)]).toEqual(["announced", "withdrawn", undefined, undefined]);
  });
});
