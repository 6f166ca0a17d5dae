import { describe, expect, it } from "vitest";
import { controlGate, emptyPurgeLog, mergePurgeLogs, purgeEffect } from "./purge.ts";
import type { EntryMeta } from "./entry.ts";

describe("the catch-up gate", () => {
  const meta = (responseTime: number) => ({ key: "h/p", responseTime, tags: [] }) as unknown as EntryMeta;
  const boot = { id: "1000-0000000000000000", at: 1000 };

  it("makes entries stored before the box start stale until the log says caught up for this start", () => {
    const log = emptyPurgeLog();
    expect(purgeEffect(log, meta(999), controlGate(log, boot))).toBe("soft");
    expect(purgeEffect(log, meta(1001), controlGate(log, boot))).toBeUndefined();
    const otherBoot = { ...log, control: { stream: "S", seq: 5, boot: "900-0000000000000000", at: 950 } };
    expect(purgeEffect(otherBoot, meta(999), controlGate(otherBoot, boot))).toBe("soft");
    const caughtUp = { ...log, control: { stream: "S", seq: 5, boot: boot.id, at: 1200 } };
    expect(purgeEffect(caughtUp, meta(999), controlGate(caughtUp, boot))).toBeUndefined();
    // Without a control plane there is no gate.
    expect(controlGate(log, undefined)).toBeUndefined();
  });

  it("never weakens a hard purge", () => {
    const log = { ...emptyPurgeLog(), urls: { "h/p": { at: 1500, soft: false } } };
    expect(purgeEffect(log, meta(999), controlGate(log, boot))).toBe("hard");
  });

  it("merges control marks across processes: the later one wins", () => {
    const a = { ...emptyPurgeLog(), control: { stream: "S", seq: 5, at: 10 } };
    const b = { ...emptyPurgeLog(), control: { stream: "S", seq: 7, boot: boot.id, at: 20 } };
    expect(mergePurgeLogs(a, b).control).toEqual(b.control);
    expect(mergePurgeLogs(b, a).control).toEqual(b.control);
    expect(mergePurgeLogs(emptyPurgeLog(), emptyPurgeLog()).control).toBeUndefined();
  });
});
