import { describe, expect, it } from "vitest";
import type { ControlMark, PurgeRequest } from "../cache/purge.ts";
import { applyBatch, type EdgeCalls } from "./agent.ts";

/** An edge that records the calls it gets, and fails the first `failures` of them. */
function fakeEdge(failures = 0) {
  const calls: (["purge", PurgeRequest] | ["purge", PurgeRequest, Omit<ControlMark, "at">] | ["drain", boolean] | ["mark", Omit<ControlMark, "at">])[] = [];
  const maybeFail = () => {
    if (failures-- > 0) throw new Error("edge restarting");
  };
  const edge: EdgeCalls = {
    async purge(req, mark) {
      maybeFail();
      calls.push(mark ? ["purge", req, mark] : ["purge", req]);
    },
    async drain(draining) {
      maybeFail();
      calls.push(["drain", draining]);
    },
    async setMark(mark) {
      maybeFail();
      calls.push(["mark", mark]);
    },
  };
  return { edge, calls };
}

describe("applyBatch", () => {
  it("applies purges, then the drain, then marks the batch applied (with the boot once caught up)", async () => {
    const { edge, calls } = fakeEdge();
    await applyBatch(
      edge,
      [
        { seq: 3, message: { kind: "purge", request: { urls: ["https://h/a"] }, at: 0 } },
        { seq: 4, message: { kind: "drain", edge: "e1", draining: true, at: 0 } },
      ],
      "e1",
      "S",
      "1-00",
    );
    expect(calls).toEqual([
      ["purge", { urls: ["https://h/a"] }],
      ["drain", true],
      ["mark", { stream: "S", seq: 4, boot: "1-00" }],
    ]);
  });

  it("does not mark anything when the edge refuses a call (the batch is not acked, and comes again)", async () => {
    const { edge, calls } = fakeEdge(1);
    const batch = [{ seq: 9, message: { kind: "purge" as const, request: { all: true }, at: 0 } }];
    await expect(applyBatch(edge, batch, "e1", "S")).rejects.toThrow("edge restarting");
    expect(calls).toEqual([]);
    await applyBatch(edge, batch, "e1", "S");
    // Without a drain, the mark rides on the last purge call: one write of the edge's log.
    expect(calls).toEqual([["purge", { all: true }, { stream: "S", seq: 9 }]]);
  });
});
