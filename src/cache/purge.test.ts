import { describe, expect, it } from "vitest";
import type { EntryMeta } from "./entry.ts";
import { controlGate, emptyPurgeLog, mergePurgeLogs, parsePurgeRequest, purgeEffect, purgeLogCovers, purgeLogsDiffer, readPurgeLog, recordPurge, type PurgeRequest } from "./purge.ts";

const keyOf = (u: URL) => u.host + u.pathname + u.search;
const prefixOf = (u: URL) => u.host + u.pathname;
const entry = (key: string, storedAt: number, tags: string[] = []): EntryMeta => ({
  kind: "entry",
  key,
  status: 200,
  statusText: "OK",
  headers: [],
  requestTime: storedAt,
  responseTime: storedAt,
  initialAge: 0,
  lifetime: 600,
  staleWhileRevalidate: 0,
  staleIfError: 0,
  noCache: false,
  mustRevalidate: false,
  tags,
});
const purge = (req: PurgeRequest, at: number, log = emptyPurgeLog()) => recordPurge(log, req, at, keyOf, prefixOf);

describe("the purge log", () => {
  it("affects entries stored before the purge only: hard → gone, soft → stale", () => {
    const log = purge({ urls: ["http://www.example.org/a"] }, 100);
    expect(purgeEffect(log, entry("www.example.org/a", 99))).toBe("hard");
    expect(purgeEffect(log, entry("www.example.org/a", 100))).toBeUndefined(); // stored as it happened
    expect(purgeEffect(log, entry("www.example.org/b", 99))).toBeUndefined();
    const soft = purge({ urls: ["http://www.example.org/a"], soft: true }, 100);
    expect(purgeEffect(soft, entry("www.example.org/a", 50))).toBe("soft");
  });

  it("matches by host (port ignored), prefix, tag and everything", () => {
    expect(purgeEffect(purge({ hosts: ["WWW.example.org"] }, 10), entry("www.example.org:8080/x", 5))).toBe("hard");
    expect(purgeEffect(purge({ prefixes: ["http://www.example.org/dists/"] }, 10), entry("www.example.org/dists/a/InRelease", 5))).toBe("hard");
    expect(purgeEffect(purge({ prefixes: ["http://www.example.org/dists/"] }, 10), entry("www.example.org/pool/x", 5))).toBeUndefined();
    expect(purgeEffect(purge({ tags: ["news"] }, 10), entry("h/x", 5, ["img", "news"]))).toBe("hard");
    expect(purgeEffect(purge({ all: true, soft: true }, 10), entry("h/x", 5))).toBe("soft");
  });

  it("a hard mark wins over a soft one for the same entry", () => {
    const log = purge({ tags: ["a"] }, 20, purge({ urls: ["http://h/x"], soft: true }, 10));
    expect(purgeEffect(log, entry("h/x", 5, ["a"]))).toBe("hard");
  });

  it("keys named like Object.prototype members are keys like any other", () => {
    const log = purge({ tags: ["constructor", "__proto__"], hosts: ["tostring"] }, 10);
    for (const tag of ["valueOf", "toString", "hasOwnProperty"]) expect(purgeEffect(log, entry("h/x", 5, [tag]))).toBeUndefined();
    expect(purgeEffect(emptyPurgeLog(), entry("h/x", 5, ["constructor"]))).toBeUndefined();
    expect(purgeEffect(log, entry("h/x", 5, ["constructor"]))).toBe("hard");
    expect(purgeEffect(log, entry("h/x", 5, ["__proto__"]))).toBe("hard");
    // The record survives a round trip through JSON (the shared record) and a merge.
    const again = mergePurgeLogs(emptyPurgeLog(), JSON.parse(JSON.stringify(log)));
    expect(purgeEffect(again, entry("h/x", 5, ["__proto__"]))).toBe("hard");
    expect(purgeEffect(again, entry("h/y", 5, ["valueOf"]))).toBeUndefined();
  });

  it("merges two processes' logs keeping the later mark of each selector", () => {
    const a = purge({ urls: ["http://h/x"] }, 10);
    const b = purge({ urls: ["http://h/x"], soft: true }, 20, purge({ tags: ["t"] }, 5));
    const m = mergePurgeLogs(a, b);
    expect(m.urls["h/x"]).toEqual({ hard: 10, soft: 20 });
    expect(m.tags["t"]).toEqual({ hard: 5 });
    expect(purgeLogsDiffer(a, b)).toBe(true);
    expect(purgeLogsDiffer(m, b)).toBe(false);
  });

  it("tells without merging whether one log holds every mark of another (a process reading back its own write)", () => {
    const a = purge({ urls: ["http://h/x"], tags: ["__proto__"] }, 10);
    const later = purge({ urls: ["http://h/x"] }, 20, a);
    expect(purgeLogCovers(later, a)).toBe(true);
    expect(purgeLogCovers(a, later)).toBe(false);
    expect(purgeLogCovers(a, purge({ urls: ["http://h/x"], soft: true }, 5, a))).toBe(false); // a soft mark a lacks
    expect(purgeLogCovers(a, { ...a, control: { stream: "S", seq: 3, at: 30 } })).toBe(false);
    expect(purgeLogCovers({ ...a, control: { stream: "S", seq: 4, at: 31 } }, { ...a, control: { stream: "S", seq: 3, at: 30 } })).toBe(true);
    expect(purgeLogCovers(a, { ...a, floor: 7 })).toBe(false);
    expect(purgeLogCovers(readPurgeLog(JSON.parse(JSON.stringify(later))), a)).toBe(true);
  });

  it("keeps at most 10,000 records per selector kind, the newest", () => {
    let log = emptyPurgeLog();
    log = purge({ tags: Array.from({ length: 1000 }, (_, i) => `old-${i}`) }, 1, log);
    for (let round = 0; round < 10; round++) log = purge({ tags: Array.from({ length: 1000 }, (_, i) => `t${round}-${i}`) }, 10 + round, log);
    expect(Object.keys(log.tags)).toHaveLength(10_000);
    expect(log.tags["old-0"]).toBeUndefined();
    // What fell off the end still counts: entries stored before it revalidate (never served as fresh).
    expect(log.floor).toBe(1);
    expect(purgeEffect(log, entry("h/x", 0, ["old-0"]))).toBe("soft");
    expect(purgeEffect(log, entry("h/x", 1, ["old-0"]))).toBeUndefined();
  });

  it("keeps at most 1 MiB of keys per selector kind, the newest: long URLs cannot make the log tens of megabytes", () => {
    const long = (round: number, i: number) => `http://h/${"x".repeat(8000)}/${round}/${i}`;
    let log = emptyPurgeLog();
    for (let round = 0; round < 3; round++) log = purge({ urls: Array.from({ length: 100 }, (_, i) => long(round, i)) }, 10 + round, log);
    const keys = Object.keys(log.urls);
    expect(keys.reduce((n, k) => n + k.length, 0)).toBeLessThanOrEqual(1024 * 1024);
    expect(keys.length).toBeGreaterThan(100);
    expect(keys.length).toBeLessThan(300);
    expect(log.urls[keyOf(new URL(long(2, 99)))]).toEqual({ hard: 12 }); // the newest kept
    expect(log.urls[keyOf(new URL(long(0, 0)))]).toBeUndefined();
    expect(log.floor).toBe(11); // the newest dropped: round 1 (part of it) and round 0
    expect(purgeEffect(log, entry(keyOf(new URL(long(0, 0))), 5))).toBe("soft");
  });

  it("a later soft purge does not weaken an earlier hard one", () => {
    const log = purge({ urls: ["http://h/x"], soft: true }, 20, purge({ urls: ["http://h/x"] }, 10));
    expect(log.urls["h/x"]).toEqual({ hard: 10, soft: 20 });
    expect(purgeEffect(log, entry("h/x", 5))).toBe("hard");
    expect(purgeEffect(log, entry("h/x", 15))).toBe("soft");
    expect(purgeEffect(log, entry("h/x", 25))).toBeUndefined();
  });

  it("reads records written by earlier versions ({at, soft})", () => {
    const old = { urls: { "h/x": { at: 10, soft: false } }, hosts: {}, prefixes: {}, tags: { t: { at: 20, soft: true } }, all: { at: 5, soft: true } };
    const log = readPurgeLog(old);
    expect(log.urls["h/x"]).toEqual({ hard: 10 });
    expect(log.tags["t"]).toEqual({ soft: 20 });
    expect(log.all).toEqual({ soft: 5 });
  });
});

describe("purge requests", () => {
  it("names what is wrong", () => {
    expect(parsePurgeRequest([])).toBe("the body must be a JSON object");
    expect(parsePurgeRequest({ url: ["x"] })).toBe('unknown field "url"');
    expect(parsePurgeRequest({ urls: ["/relative"] })).toMatch(/absolute http\(s\) URLs/);
    expect(parsePurgeRequest({ tags: [""] })).toMatch(/non-empty strings/);
    expect(parsePurgeRequest({ soft: true })).toMatch(/nothing to purge/);
    expect(parsePurgeRequest({ tags: Array(1001).fill("t") })).toMatch(/at most 1000/);
    expect(parsePurgeRequest({ tags: ["a"], soft: true })).toEqual({ tags: ["a"], soft: true });
  });
});

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
    const log = { ...emptyPurgeLog(), urls: { "h/p": { hard: 1500 } } };
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
