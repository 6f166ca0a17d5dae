import { describe, expect, it } from "vitest";
import { isToPrimary, isToWorker } from "./dns-cluster.ts";

describe("the DNS node's process protocol", () => {
  it("accepts the messages of the protocol and nothing else", () => {
    expect(isToWorker({ type: "start", configPath: "/c.toml", configText: "", processes: 2 })).toBe(true);
    expect(isToWorker({ type: "start", configPath: "/c.toml", configText: "" })).toBe(false);
    expect(isToWorker({ type: "health", states: [] })).toBe(true);
    expect(isToWorker({ type: "challenges", changes: [{ op: "remove", name: "x" }] })).toBe(true);
    expect(isToWorker({ type: "reload", configText: "[dns]" })).toBe(true);
    expect(isToWorker({ type: "reload" })).toBe(false);
    expect(isToWorker({ dns: "udp" })).toBe(false);
    expect(isToWorker({ type: "udp", host: "127.0.0.1", port: 5353 })).toBe(true);
    expect(isToWorker({ type: "udp" })).toBe(false);
    expect(isToWorker("loaded")).toBe(false);
    expect(isToPrimary({ type: "stats", delta: { queries: [[1, 2]], answers: [] } })).toBe(true);
    expect(isToPrimary({ type: "stats", delta: {} })).toBe(false);
    expect(isToPrimary({ type: "reloaded" })).toBe(true);
    expect(isToPrimary({ type: "reloaded", error: 3 })).toBe(false);
    expect(isToPrimary({ type: "failed", error: "bad config" })).toBe(true);
    expect(isToPrimary(null)).toBe(false);
  });
});
