import { describe, expect, it } from "vitest";
import { MirrorSchema } from "../config/redirector-schema.ts";
import { Catalog } from "./catalog.ts";
import { FileState, MirrorState } from "./mirror-state.ts";
import { applyMirror, catalogOrder, decodeBeat, decodeMirror, encodeMirror, liveBoxes, ownerOf, SHARED_MAX_VALUE_BYTES, type SharedMirror } from "./shared-state.ts";

const mirror = (paths = ["/**"]) => new MirrorState(MirrorSchema.parse({ name: "m1", url: "http://127.0.0.1:9/", lat: 0, lon: 0, paths }), 0, {});
const files = (names: string[]) => names.map((n) => ({ path: `/iso/${n}`, size: n.length * 100, sha256: undefined }));

describe("shared mirror states", () => {
  it("travel between catalogs that number the same files differently", async () => {
    const a = new Catalog();
    a.update(files(["c.iso", "a.iso", "b.iso"]), 1);
    const b = new Catalog();
    b.update(files(["a.iso"]), 1);
    b.update(files(["a.iso", "b.iso", "c.iso"]), 2);
    const ma = mirror();
    ma.follow(a);
    ma.recordFile(a.get("/iso/a.iso")!.id, FileState.Present);
    ma.recordFile(a.get("/iso/b.iso")!.id, FileState.Wrong);
    ma.recordFile(a.get("/iso/c.iso")!.id, FileState.Absent);
    ma.lastScan = 1000;
    ma.synced = true;
    const [oa, ob] = [await catalogOrder(a), await catalogOrder(b)];
    expect(oa.digest).toBe(ob.digest);
    const s = decodeMirror(encodeMirror(ma, oa, "box-a")) as SharedMirror;
    expect(typeof s).toBe("object");
    const mb = mirror();
    mb.follow(b);
    expect(applyMirror(mb, s, ob)).toBe("applied");
    expect(mb.files[b.get("/iso/a.iso")!.id]).toBe(FileState.Present);
    expect(mb.files[b.get("/iso/b.iso")!.id]).toBe(FileState.Wrong);
    expect(mb.files[b.get("/iso/c.iso")!.id]).toBe(FileState.Absent);
    expect(mb.hasWrongUnder("/iso/", b)).toBe(true);
    expect([mb.lastScan, mb.synced]).toEqual([1000, true]);
    // Not newer than what it holds: left alone.
    expect(applyMirror(mb, s, ob)).toBe("stale");
  });

  it("are applied without their files while the catalogs differ, and whole once they agree", async () => {
    const a = new Catalog();
    a.update(files(["a.iso", "new.iso"]), 1);
    const b = new Catalog();
    b.update(files(["a.iso"]), 1);
    const ma = mirror();
    ma.follow(a);
    ma.recordFile(0, FileState.Present);
    ma.recordFailure("HEAD: 503");
    ma.lastScan = 5;
    const s = decodeMirror(encodeMirror(ma, await catalogOrder(a), "box-a")) as SharedMirror;
    const mb = mirror();
    mb.follow(b);
    expect(applyMirror(mb, s, await catalogOrder(b))).toBe("catalog");
    expect([mb.files[0], mb.failures, mb.lastScan]).toEqual([FileState.Unknown, 1, undefined]);
    b.update(files(["a.iso", "new.iso"]), 2);
    mb.follow(b);
    expect(applyMirror(mb, s, await catalogOrder(b))).toBe("applied");
    expect([mb.files[0], mb.failures, mb.lastError, mb.lastScan]).toEqual([FileState.Present, 1, "HEAD: 503", 5]);
  });

  it("from a mirror configured with other paths or url are not applied; a file it does not carry stays so", async () => {
    const c = new Catalog();
    c.update(files(["a.iso"]), 1);
    const ma = mirror();
    ma.follow(c);
    ma.recordFile(0, FileState.Present);
    ma.lastScan = 1;
    const s = decodeMirror(encodeMirror(ma, await catalogOrder(c), "box-a")) as SharedMirror;
    const other = mirror(["/debian/**"]);
    other.follow(c);
    expect(applyMirror(other, s, await catalogOrder(c))).toBe("config");
    expect(other.files[0]).toBe(FileState.NotCarried);
  });

  it("leave out per-file states too large for a message; malformed values are refused with the reason", async () => {
    const c = new Catalog();
    c.update(Array.from({ length: 3000 }, (_, i) => ({ path: `/p/${i}`, size: 1 })), 1);
    const m = mirror();
    m.follow(c);
    m.lastScan = 1;
    expect((decodeMirror(encodeMirror(m, await catalogOrder(c), "box-a")) as SharedMirror).states).toHaveLength(2000);
    const text = encodeMirror(m, await catalogOrder(c), "box-a", 1000);
    expect(text.length).toBeLessThanOrEqual(1000);
    expect((decodeMirror(text) as SharedMirror).states).toBeNull();
    expect(decodeMirror("{")).toBe("not JSON");
    expect(decodeMirror("x".repeat(SHARED_MAX_VALUE_BYTES + 1))).toMatch(/larger than/);
    const ok = JSON.parse(encodeMirror(mirror(), await catalogOrder(new Catalog()), "b")) as Record<string, unknown>;
    expect(decodeMirror(JSON.stringify({ ...ok, files: 9 }))).toBe("states: not 9 files");
    expect(decodeMirror(JSON.stringify({ ...ok, failures: -1 }))).toBe("failures: not a count");
    expect(decodeMirror(JSON.stringify({ ...ok, v: 2 }))).toBe("v: not 1");
    expect(decodeBeat(JSON.stringify({ box: "a b", at: 1, state: "up", interval_ms: 1 }))).toBe("box: not a box name");
  });
});

describe("which box scans a mirror", () => {
  const mirrors = Array.from({ length: 300 }, (_, i) => `mirror-${i}`);

  it("spreads mirrors over the boxes; a box leaving moves only its own mirrors", () => {
    const three = ["eu", "us", "asia"];
    const before = new Map(mirrors.map((m) => [m, ownerOf(m, three)!]));
    for (const b of three) expect([...before.values()].filter((o) => o === b).length).toBeGreaterThan(60);
    const after = new Map(mirrors.map((m) => [m, ownerOf(m, ["eu", "asia"])!]));
    for (const m of mirrors) if (before.get(m) !== "us") expect(after.get(m)).toBe(before.get(m));
    expect(ownerOf("m", [])).toBeUndefined();
  });

  it("counts a box live for three heartbeats after its last, not after it said it stopped", () => {
    const beats = [
      { box: "a", at: 1000, state: "up" as const, interval_ms: 500 },
      { box: "b", at: 2000, state: "stopped" as const, interval_ms: 500 },
      { box: "c", at: 400, state: "up" as const, interval_ms: 500 },
    ];
    expect(liveBoxes(beats, 2500, "self")).toEqual(["a", "self"]);
    expect(liveBoxes(beats, 2501, "self")).toEqual(["self"]);
  });
});
