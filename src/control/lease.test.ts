import { describe, expect, it } from "vitest";
import { Lease, unconfirmedLeader } from "./lease.ts";

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

describe("unconfirmedLeader: only a stream leader that hears a quorum confirms a box current", () => {
  const ms = (n: number) => n * 1e6;
  const peer = (name: string, activeMs: number, offline = false) => ({ name, active: ms(activeMs), offline });

  it("accepts a single server or a one-replica stream, and a leader that heard a majority recently", () => {
    expect(unconfirmedLeader(undefined, 3, 3000)).toBeUndefined();
    expect(unconfirmedLeader({ leader: "a" }, 1, 3000)).toBeUndefined();
    expect(unconfirmedLeader({ leader: "a", replicas: [peer("b", 400), peer("c", 9000)] }, 3, 3000)).toBeUndefined();
    expect(unconfirmedLeader({ leader: "a", replicas: [peer("b", 200), peer("c", 300), peer("d", 9000), peer("e", 9000)] }, 5, 3000)).toBeUndefined();
  });

  it("refuses a leader cut off from the other members (a partition keeps it leading for up to 10 s)", () => {
    expect(unconfirmedLeader({ leader: "ap", replicas: [peer("eu", 4200), peer("us", 4300)] }, 3, 3000)).toMatch(
      /leader ap has heard 1 of its 3 members within 3000 ms \(a quorum is 2\)/,
    );
    expect(unconfirmedLeader({ leader: "a", replicas: [peer("b", 200), peer("c", 9000), peer("d", 9000), peer("e", 9000)] }, 5, 3000)).toMatch(/heard 2 of its 5/);
  });

  it("counts no member it never heard or knows offline, and no answer without a leader", () => {
    expect(unconfirmedLeader({ leader: "a", replicas: [peer("b", 0), peer("c", 0)] }, 3, 3000)).toMatch(/heard 1 of its 3/);
    expect(unconfirmedLeader({ leader: "a", replicas: [peer("b", 100, true), peer("c", 5000)] }, 3, 3000)).toMatch(/heard 1 of its 3/);
    expect(unconfirmedLeader({ replicas: [] }, 3, 3000)).toBe("the control stream has no leader");
  });
});
