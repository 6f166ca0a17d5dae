import { describe, expect, it } from "vitest";
import { Lease } from "./lease.ts";

describe("Lease", () => {
  it("is never trusted before a check is answered and applied", () => {
    const l = new Lease(5000);
    expect(l.view(1000)).toMatchObject({ state: "cut-off", trustedUntil: 0 });
    l.answered(1000, 10, 7);
    expect(l.view(1100)).toMatchObject({ state: "lagging", lag: 3, trustedUntil: 0 });
    l.applied(10);
    // Current as of when the question was sent, not when the box caught up.
    expect(l.view(1200)).toMatchObject({ state: "current", confirmedAt: 1000, trustedUntil: 6000, lag: 0 });
  });

  it("expires lease_ms after the last confirmation when the control plane stops answering", () => {
    const l = new Lease(5000);
    l.answered(1000, 3, 3);
    expect(l.view(6000).state).toBe("current");
    expect(l.view(6001)).toMatchObject({ state: "cut-off", lastContact: 1000 });
  });

  it("says lagging (not cut off) while answers come but the box does not keep up", () => {
    const l = new Lease(5000);
    l.answered(1000, 3, 3);
    l.answered(6000, 40, 3);
    expect(l.view(7000)).toMatchObject({ state: "lagging", lag: 37 });
    l.applied(40);
    expect(l.view(7000)).toMatchObject({ state: "current", confirmedAt: 6000 });
  });

  it("under a steady load keeps the older question, which confirms as soon as the box reaches it", () => {
    const l = new Lease(5000);
    l.answered(1000, 100, 90);
    l.answered(2000, 200, 95);
    l.applied(100);
    expect(l.view(2100)).toMatchObject({ state: "current", confirmedAt: 1000 });
    l.answered(3000, 300, 150);
    l.applied(300);
    expect(l.view(3100)).toMatchObject({ confirmedAt: 3000 });
  });
});
