import { describe, expect, it } from "vitest";
import { coalesce, contiguous, planStart, type Delivered } from "./plan.ts";

const S = "2026-01-01T00:00:00Z";

describe("planStart", () => {
  it("resumes right after what the box applied", () => {
    expect(planStart({ stream: S, seq: 40 }, { id: S, firstSeq: 1, lastSeq: 45 })).toMatchObject({ startSeq: 41, softAll: false });
    expect(planStart({ stream: S, seq: 45 }, { id: S, firstSeq: 1, lastSeq: 45 })).toMatchObject({ startSeq: 46, softAll: false });
    // Everything up to 45 expired but the box had applied it: no gap.
    expect(planStart({ stream: S, seq: 45 }, { id: S, firstSeq: 46, lastSeq: 45 })).toMatchObject({ startSeq: 46, softAll: false });
  });

  it("reads a new stream from the start; a box new to an old stream assumes it missed what expired", () => {
    expect(planStart(undefined, { id: S, firstSeq: 0, lastSeq: 0 })).toMatchObject({ startSeq: 1, softAll: false });
    expect(planStart(undefined, { id: S, firstSeq: 1, lastSeq: 9 })).toMatchObject({ startSeq: 1, softAll: false });
    expect(planStart(undefined, { id: S, firstSeq: 500, lastSeq: 900 })).toMatchObject({ startSeq: 500, softAll: true });
  });

  it("treats expired messages, a recreated stream or a shorter stream as a gap: soft purge of all", () => {
    const gap = planStart({ stream: S, seq: 10 }, { id: S, firstSeq: 20, lastSeq: 30 });
    expect(gap).toMatchObject({ startSeq: 20, softAll: true });
    expect(gap.reason).toBe("messages 11–19 expired before this box read them");
    expect(planStart({ stream: "old", seq: 10 }, { id: S, firstSeq: 1, lastSeq: 3 })).toMatchObject({ startSeq: 1, softAll: true });
    expect(planStart({ stream: S, seq: 10 }, { id: S, firstSeq: 1, lastSeq: 3 })).toMatchObject({ startSeq: 1, softAll: true });
  });
});

describe("coalesce", () => {
  const purge = (seq: number, request: object, targets?: string[]): Delivered => ({
    seq,
    message: { kind: "purge", request, ...(targets ? { targets } : {}), at: 0 },
  });

  it("merges purges into few calls, soft ones first, each list at most 1000 items", () => {
    const batch: Delivered[] = [];
    for (let i = 1; i <= 2500; i++) batch.push(purge(i, { urls: [`https://h/${i}`] }));
    batch.push(purge(2501, { tags: ["a"], soft: true }), purge(2502, { tags: ["a"], soft: true }), purge(2503, { all: true }));
    const plan = coalesce(batch, "e1");
    expect(plan.lastSeq).toBe(2503);
    expect(plan.purges.map((p) => [p.soft ?? false, p.all ?? false, p.urls?.length ?? 0, p.tags?.length ?? 0])).toEqual([
      [true, false, 0, 1],
      [false, true, 1000, 0],
      [false, false, 1000, 0],
      [false, false, 500, 0],
    ]);
  });

  it("applies only its own drains and targeted purges, keeps the last drain, and reports refused messages", () => {
    const plan = coalesce(
      [
        { seq: 1, message: { kind: "drain", edge: "e1", draining: true, at: 0 } },
        { seq: 2, message: { kind: "drain", edge: "e2", draining: true, at: 0 } },
        purge(3, { hosts: ["h"] }, ["e2"]),
        purge(4, { hosts: ["g"] }, ["e1", "e2"]),
        { seq: 5, message: "not JSON" },
        { seq: 6, message: { kind: "drain", edge: "e1", draining: false, at: 0 } },
      ],
      "e1",
    );
    expect(plan).toEqual({ purges: [{ hosts: ["g"] }], drain: false, lastSeq: 6, refused: [{ seq: 5, reason: "not JSON" }] });
  });

  it("makes no call for a batch with nothing for this edge, but still moves the mark", () => {
    expect(coalesce([purge(7, { all: true }, ["other"])], "e1")).toEqual({ purges: [], lastSeq: 7, refused: [] });
  });
});

describe("contiguous", () => {
  const seqs = (...s: number[]) => s.map((seq) => ({ seq }));
  it("applies what continues the applied sequence, drops redeliveries, and stops at a hole", () => {
    expect(contiguous(seqs(5, 6, 7), 4)).toEqual({ run: seqs(5, 6, 7) });
    expect(contiguous(seqs(3, 4, 5, 6), 4)).toEqual({ run: seqs(5, 6) });
    expect(contiguous(seqs(5, 7, 8), 4)).toEqual({ run: seqs(5), gapAt: 7 });
    expect(contiguous(seqs(6), 4)).toEqual({ run: [], gapAt: 6 });
    expect(contiguous(seqs(2, 3), 4)).toEqual({ run: [] });
  });
});
