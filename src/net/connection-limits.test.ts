import { describe, expect, it } from "vitest";
import { clientKey, ConnectionLimits } from "./connection-limits.ts";

describe("connection limits", () => {
  it("lets a new connection in by closing the oldest idle one first", () => {
    const l = new ConnectionLimits<string>({ max: 3, perClient: 10 });
    expect(l.admit("a", "1.1.1.1")).toEqual([]);
    expect(l.admit("b", "1.1.1.2")).toEqual([]);
    expect(l.admit("c", "1.1.1.3")).toEqual([]);
    l.setIdle("b", true);
    l.setIdle("c", true);
    expect(l.admit("d", "1.1.1.4")).toEqual(["b"]);
    expect(l.size).toBe(3);
    // Nothing idle: the oldest busy one goes.
    l.setIdle("c", false);
    expect(l.admit("e", "1.1.1.5")).toEqual(["a"]);
    expect(l.evicted).toBe(2);
  });

  it("holds each client to its share, closing that client's own connections", () => {
    const l = new ConnectionLimits<number>({ max: 100, perClient: 2 });
    l.admit(1, "attacker");
    l.admit(2, "attacker");
    l.admit(3, "other");
    l.setIdle(2, true);
    expect(l.admit(4, "attacker")).toEqual([2]);
    expect(l.admit(5, "attacker")).toEqual([1]);
    expect(l.admit(6, "other")).toEqual([]);
  });

  it("never closes more than needed, and forgets closed connections", () => {
    const l = new ConnectionLimits<number>({ max: 2, perClient: 1 });
    l.admit(1, "x");
    l.admit(2, "y");
    // Client x is at its share and the listener is full: closing x's connection makes room for both limits.
    expect(l.admit(3, "x")).toEqual([1]);
    l.remove(3);
    l.remove(3);
    expect(l.size).toBe(1);
    expect(l.admit(4, "z")).toEqual([]);
  });

  it("counts IPv6 clients per /64", () => {
    expect(clientKey("2001:db8:1:2::5")).toBe(clientKey("2001:db8:1:2:ffff::1"));
    expect(clientKey("2001:db8:1:3::5")).not.toBe(clientKey("2001:db8:1:2::5"));
    expect(clientKey("192.0.2.1")).toBe("192.0.2.1");
    expect(clientKey("::ffff:192.0.2.1")).toBe("192.0.2.1");
  });
});
