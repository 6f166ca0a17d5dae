/**
 * How the disk store reads a HIT's body, on a one-process bare workerd box with the memory tier off (every read
 * reaches the store), told by the store's own counters (`parrot_edge_store_read_bytes_total{path}`): a block's first
 * read is checked in JavaScript against its digest; once checked, whole bodies, single Ranges and slices leave the
 * store as the disk service's body, untouched (no JavaScript byte read), and a Range reads only its own bytes.
 */
import { closeSync, openSync, readdirSync, readFileSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
// @ts-expect-error: the package ships no types
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Served } from "../../src/node/serve-fetch.ts";
import { startEdgeWorkerd, type RunningWorkerdEdge } from "../../src/node/workerd-host.ts";
import { storeBytes } from "../../src/store/scan.ts";
import { pattern, ScriptedOrigin } from "../support/scripted-origin.ts";
import { startEdgeAndOrigin, type EdgeAndOrigin } from "../support/workerd-edge.ts";

const MB = 1024 * 1024;
const origin = new ScriptedOrigin();
let box: EdgeAndOrigin;
let served: Served;
let dir: string;
let edge: RunningWorkerdEdge;

beforeAll(async () => {
  const config = (url: string) => `[edge]
name = "reads"
origin = "${url}"
hot_max_bytes = 0
access_log = false
max_object_bytes = ${16 * MB}
slice_bytes = ${2 * MB}
slice_threshold_bytes = ${4 * MB}
[admin]
token = "store-reads-test-token-0123456789"
metrics_public = true
`;
  box = await startEdgeAndOrigin("store-reads", origin.handle, config, { processes: 1 });
  ({ edge, origin: served, dir } = box);
}, 60_000);

afterAll(async () => {
  await box?.stop();
});

type Reads = { native: number; checked: number; head: number };

async function metrics() {
  const text = await (await fetch(`${edge.url}/.well-known/cdn/metrics`)).text();
  type Family = { name: string; metrics: { value: string; labels?: Record<string, string> }[] };
  const families = parsePrometheusTextFormat(text) as Family[];
  return (name: string, labels: Record<string, string> = {}) =>
    Number(families.find((f) => f.name === name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value ?? 0);
}

async function reads(): Promise<Reads> {
  const m = await metrics();
  const of = (path: string) => m("parrot_edge_store_read_bytes_total", { path });
  return { native: of("native"), checked: of("checked"), head: of("head") };
}

/** Answers the edge read from the store's files itself, and the store's lookups (match calls). */
async function directAndMatches(): Promise<{ direct: number; matches: number }> {
  const m = await metrics();
  return { direct: m("parrot_edge_store_disk_direct_hits_total"), matches: m("parrot_edge_store_calls_total", { call: "match" }) };
}

/** What one request cost the store: the counters' growth across it. */
async function costOf(path: string, headers: Record<string, string> = {}) {
  const before = await reads();
  const io0 = readChars();
  const res = await fetch(`${edge.url}${path}`, { headers });
  const body = new Uint8Array(await res.arrayBuffer());
  const io1 = readChars();
  const after = await reads();
  return {
    status: res.status,
    xcs: res.headers.get("x-cache-status"),
    length: res.headers.get("content-length"),
    body,
    cost: { native: after.native - before.native, checked: after.checked - before.checked, head: after.head - before.head },
    /** Bytes the process read from files meanwhile (the store's disk reads). */
    disk: io1 - io0,
  };
}

/**
 * Bytes the box's workerd process read through read(2) (/proc/<pid>/io rchar): the disk service's file reads (workerd
 * receives from sockets with calls rchar does not count, as a MISS's zero here shows).
 */
function readChars(): number {
  return Number(/rchar:\s+(\d+)/.exec(readFileSync(`/proc/${edge.edgePids()[0]}/io`, "utf8"))![1]);
}

/** Waits (bounded) until the store's files stop changing. */
async function settle() {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    const now = storeBytes(join(dir, "store"));
    if (now === last) return;
    last = now;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const bin = { "cache-control": "max-age=600", "content-type": "application/octet-stream" };

describe("disk store reads", () => {
  it("a HIT's body is checked in JavaScript on its first read, then leaves the store untouched by JavaScript (whole, Range, small)", async () => {
    const SIZE = 3 * MB + 123; // stored whole (under the slice threshold): 4 blocks
    const SMALL = 1000;
    origin.set("/whole.bin", { headers: bin, size: SIZE });
    origin.set("/small.bin", { headers: bin, size: SMALL });
    for (const p of ["/whole.bin", "/small.bin"]) expect((await costOf(p)).xcs).toBe("MISS");
    await settle();

    // First reads: every block read and checked in JavaScript, nothing native.
    const first = await costOf("/whole.bin");
    expect([first.xcs, first.length, first.body]).toEqual(["HIT", String(SIZE), pattern(SIZE)]);
    expect(first.cost).toMatchObject({ native: 0, checked: SIZE });
    const firstSmall = await costOf("/small.bin");
    expect([firstSmall.xcs, firstSmall.body]).toEqual(["HIT", pattern(SMALL)]);
    expect(firstSmall.cost).toMatchObject({ native: 0, checked: SMALL });

    // Then: the disk service's body, with its length; JavaScript reads none of it, and the head comes from memory.
    const again = await costOf("/whole.bin");
    expect([again.xcs, again.length, again.body]).toEqual(["HIT", String(SIZE), pattern(SIZE)]);
    expect(again.cost).toEqual({ native: SIZE, checked: 0, head: 0 });
    // (The small one's checked read told the edge where its body is: within a second it reads the file itself.)
    const direct0 = await directAndMatches();
    const small = await costOf("/small.bin");
    const direct1 = await directAndMatches();
    expect([small.xcs, small.length, small.body]).toEqual(["HIT", String(SMALL), pattern(SMALL)]);
    expect(small.cost).toEqual({ native: direct1.direct > direct0.direct ? 0 : SMALL, checked: 0, head: 0 });
    const part = await costOf("/whole.bin", { range: "bytes=1048000-1049999" }); // across two blocks
    expect([part.status, part.length, part.body]).toEqual([206, "2000", pattern(SIZE).subarray(1048000, 1050000)]);
    expect(part.cost).toMatchObject({ checked: 0, head: 0 });
  }, 60_000);

  it("a whole body checked lately is read by the edge from its file, without a call to the store", async () => {
    const SIZE = 1000;
    origin.set("/direct.bin", { headers: bin, size: SIZE });
    expect((await costOf("/direct.bin")).xcs).toBe("MISS");
    await settle();
    expect((await costOf("/direct.bin")).cost).toMatchObject({ checked: SIZE }); // checked: the store says where it is
    // The store's answer lets the edge read the file for a second at most (a use the store sees at least that often):
    // on a busy machine a try may come after it, so a few tries (bounded).
    let direct = false;
    for (let i = 0; i < 10 && !direct; i++) {
      const before = await directAndMatches();
      const hit = await costOf("/direct.bin");
      const after = await directAndMatches();
      expect([hit.xcs, hit.length, hit.body]).toEqual(["HIT", String(SIZE), pattern(SIZE)]);
      direct = after.direct === before.direct + 1 && after.matches === before.matches;
      if (direct) {
        expect(hit.cost).toEqual({ native: 0, checked: 0, head: 0 }); // the store read nothing
        expect(hit.disk).toBe(SIZE); // the process read the body's bytes from the file, nothing else
      }
    }
    expect(direct).toBe(true);
  }, 60_000);

  it("a 1,000-byte Range reads 1,000 bytes of body, not its block; a Range of a sliced object returns the slice's body untouched", async () => {
    const SIZE = 3 * MB;
    origin.set("/ranged.bin", { headers: bin, size: SIZE, ranges: true });
    expect((await costOf("/ranged.bin")).xcs).toBe("MISS");
    await settle();
    // Its blocks checked once (a whole read), then a Range deep inside costs its own bytes, plus what the disk service
    // read ahead (one 64 KiB buffer) of the whole body the edge's lookup opened and dropped; before: two whole blocks.
    const checkedOnce = await costOf("/ranged.bin");
    expect(checkedOnce.cost.checked).toBe(SIZE);
    const deep = await costOf("/ranged.bin", { range: "bytes=2500000-2500999" });
    expect([deep.status, deep.body]).toEqual([206, pattern(SIZE).subarray(2500000, 2501000)]);
    expect(deep.cost).toMatchObject({ checked: 0, head: 0 });
    expect(deep.disk).toBeGreaterThanOrEqual(1000);
    expect(deep.disk).toBeLessThanOrEqual(1000 + 2 * 65536);

    // A sliced object (2 MiB slices): the miss stores each slice and reads it back checked; a Range then is native.
    const BIG = 6 * MB + 5;
    origin.set("/sliced.bin", { headers: { ...bin, etag: '"v1"' }, size: BIG, ranges: true });
    const whole = await costOf("/sliced.bin");
    expect([whole.status, whole.body.byteLength]).toEqual([200, BIG]);
    expect(whole.body).toEqual(pattern(BIG));
    await settle();
    const r = await costOf("/sliced.bin", { range: "bytes=4200000-4200999" });
    expect([r.status, r.xcs, r.length, r.body]).toEqual([206, "HIT", "1000", pattern(BIG).subarray(4200000, 4201000)]);
    // Its bytes and at most the record's head (not read since it was stored): nothing else from the disk.
    expect(r.cost).toMatchObject({ native: 1000, checked: 0 });
    expect(r.cost.head).toBeLessThan(4096);
    expect(r.disk).toBe(1000 + r.cost.head);
  }, 60_000);

  it("with store_recheck_seconds = 0 every read is checked: a byte flipped on disk after a HIT is never served", async () => {
    const SIZE = 2 * MB + 10;
    origin.set("/recheck.bin", { headers: bin, size: SIZE });
    const strict = await startEdgeWorkerd({
      configText: `[edge]\nname = "strict"\norigin = "${served.url}"\nhot_max_bytes = 0\naccess_log = false\nstore_recheck_seconds = 0\n`,
      storeDir: join(dir, "strict"),
      processes: 1,
      log: () => {},
    });
    try {
      expect((await fetch(`${strict.url}/recheck.bin`).then(async (r) => [r.headers.get("x-cache-status"), (await r.arrayBuffer()).byteLength]))).toEqual(["MISS", SIZE]);
      let file = "";
      for (let i = 0; i < 100 && !file; i++) {
        file = storeFiles(join(dir, "strict")).find((f) => statSync(f).size > SIZE) ?? "";
        if (!file) await new Promise((r) => setTimeout(r, 50));
      }
      const hit = await fetch(`${strict.url}/recheck.bin`);
      expect([hit.headers.get("x-cache-status"), new Uint8Array(await hit.arrayBuffer())]).toEqual(["HIT", pattern(SIZE)]);
      // Flipped after the read that checked every block: the next read checks again and never ends cleanly.
      const headLen = JSON.parse(readFileSync(file).subarray(-192).toString("utf8").split("\n")[0]!).h as number;
      const fd = openSync(file, "r+");
      writeSync(fd, Buffer.from([pattern(SIZE)[MB + 3]! ^ 0x20]), 0, 1, headLen + MB + 3);
      closeSync(fd);
      const damaged = await fetch(`${strict.url}/recheck.bin`);
      expect(damaged.headers.get("x-cache-status")).toBe("HIT");
      await expect(damaged.arrayBuffer()).rejects.toThrow();
      const after = await fetch(`${strict.url}/recheck.bin`);
      expect([after.headers.get("x-cache-status"), new Uint8Array(await after.arrayBuffer())]).toEqual(["MISS", pattern(SIZE)]);
    } finally {
      await strict.stop();
    }
  }, 60_000);
});

/** The entry files under a store directory (not its run directory). */
function storeFiles(storeDir: string): string[] {
  return readdirSync(storeDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && /^[0-9a-f]{2}$/.test(d.name))
    .flatMap((d) => readdirSync(join(storeDir, d.name)).map((n) => join(storeDir, d.name, n)));
}
