import { describe, expect, it } from "vitest";
import { rendezvousOrder } from "./shields.ts";

const keys = Array.from({ length: 6000 }, (_, i) => `cdn.example.org/pool/main/p/pkg-${i}.deb`);

describe("rendezvousOrder", () => {
  it("orders every shield once, the same on every call (every edge agrees)", () => {
    const names = ["shield-a", "shield-b", "shield-c"];
    for (const key of keys.slice(0, 50)) {
      const order = rendezvousOrder(names, key);
      expect([...order].sort()).toEqual([0, 1, 2]);
      expect(rendezvousOrder([...names], key)).toEqual(order);
    }
  });

  it("spreads keys evenly over the shields", () => {
    const names = ["shield-a", "shield-b", "shield-c"];
    const owned = [0, 0, 0];
    for (const key of keys) owned[rendezvousOrder(names, key)[0]!]! += 1;
    for (const n of owned) expect(n).toBeGreaterThan(1800); // of 2000 each
  });

  it("a shield that leaves moves only its own keys, each to the next shield of its order", () => {
    const names = ["shield-a", "shield-b", "shield-c"];
    const without = ["shield-a", "shield-c"];
    for (const key of keys.slice(0, 2000)) {
      const order = rendezvousOrder(names, key).map((i) => names[i]);
      const after = rendezvousOrder(without, key).map((i) => without[i]);
      expect(after).toEqual(order.filter((n) => n !== "shield-b"));
    }
  });

  it("the order does not depend on the order the shields are listed in", () => {
    const a = ["s1", "s2", "s3", "s4"];
    const b = ["s3", "s1", "s4", "s2"];
    for (const key of keys.slice(0, 200)) {
      expect(rendezvousOrder(b, key).map((i) => b[i])).toEqual(rendezvousOrder(a, key).map((i) => a[i]));
    }
  });
});
