import { describe, expect, it } from "vitest";
import type { PeerInvalidations } from "../contracts/store.ts";
import { ClientInvalidations } from "./invalidations.ts";
import { MemoryStore } from "./store.ts";

/** A store and a ring that can be taken away, as a killed store process is. */
function box() {
  let away = false;
  const store = new MemoryStore(() => 0);
  const deleteOf = store.delete.bind(store);
  store.delete = (key) => (away ? Promise.reject(new Error("network connection lost")) : deleteOf(key));
  const ring: string[] = [];
  const peers: PeerInvalidations = {
    publish: async (keys) => {
      if (away) throw new Error("network connection lost");
      ring.push(...keys);
    },
    poll: async () => {
      if (away) throw new Error("network connection lost");
    },
  };
  return { store, ring, peers, setAway: (a: boolean) => void (away = a) };
}

describe("client invalidations across the box", () => {
  it("deletes the entries and tells the other processes", async () => {
    const b = box();
    await b.store.put("k", { kind: "purge-log", key: "k" }, null, 60);
    const inv = new ClientInvalidations(b.store, b.peers);
    await inv.invalidate(["k"]);
    expect(await b.store.get("k")).toBeNull();
    expect(b.ring).toEqual(["k"]);
  });

  it("what the store could not take is sent again with the reads until it takes it, once", async () => {
    const b = box();
    await b.store.put("k", { kind: "purge-log", key: "k" }, null, 60);
    const inv = new ClientInvalidations(b.store, b.peers);
    b.setAway(true);
    await inv.invalidate(["k"]);
    await inv.read(); // still away: kept
    expect(b.ring).toEqual([]);
    b.setAway(false);
    await inv.read();
    expect(await b.store.get("k")).toBeNull();
    expect(b.ring).toEqual(["k"]);
    await inv.read();
    expect(b.ring).toEqual(["k"]); // sent once it was taken, not again
  });

  it("while the store is away a read tries one key, not every key kept", async () => {
    const b = box();
    let deletes = 0;
    const deleteOf = b.store.delete;
    b.store.delete = (key) => (deletes++, deleteOf(key));
    const inv = new ClientInvalidations(b.store, b.peers);
    b.setAway(true);
    await inv.invalidate(["a", "b", "c"]);
    deletes = 0;
    await inv.read();
    expect(deletes).toBe(1);
    b.setAway(false);
    await inv.read();
    expect(b.ring.sort()).toEqual(["a", "b", "c"]);
  });

  it("keeps at most 10,000 keys for an absent store, the newest", async () => {
    const b = box();
    const inv = new ClientInvalidations(b.store, b.peers);
    b.setAway(true);
    const errors = console.error;
    console.error = () => {};
    try {
      for (let i = 0; i < 10_050; i += 50) await inv.invalidate(Array.from({ length: 50 }, (_, j) => `k${i + j}`));
    } finally {
      console.error = errors;
    }
    b.setAway(false);
    await inv.read();
    expect(b.ring).toHaveLength(10_000);
    expect(b.ring[0]).toBe("k50");
    expect(b.ring.at(-1)).toBe("k10049");
  });
});
