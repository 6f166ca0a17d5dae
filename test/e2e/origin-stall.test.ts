/**
 * An origin that stalls in the middle of a slice blocks nobody for long, on bare workerd (one process, and two with
 * the locks in the store process) and on Miniflare: after origin_idle_timeout_ms without bytes the edge gives the body
 * up (the origin sees its connection closed), the slice's lock is released, and the requests that wanted the slice
 * fetch it afresh and get every byte. The scripted origin sends the headers and 1 MiB of the slice, then nothing
 * until the edge closes the connection (or the test releases it).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningEdge } from "../../src/node/edge-host.ts";
import { startEdgeMiniflare } from "../../src/node/edge-host.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { startEdgeWorkerd } from "../../src/node/workerd-host.ts";
import { waitFor } from "../support/anycast.ts";
import { pattern, ScriptedOrigin, type Script } from "../support/scripted-origin.ts";

const MiB = 1024 * 1024;
const SLICE = 4 * MiB;
const SIZE = 5 * SLICE + 12_345;
const DEADLINE_MS = 30_000;
/** Bare workerd with one process (in-isolate locks), with two edge processes (the store process holds the locks), Miniflare. */
const RUNTIMES = ["workerd", "workerd --processes 2", "miniflare"] as const;

/** A response within the deadline, or a failure that says there was none. */
async function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${DEADLINE_MS} ms`)), DEADLINE_MS)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe.each(RUNTIMES)("an origin that stalls mid-slice, runtime %s", (runtime) => {
  const origin = new ScriptedOrigin();
  let served: Served;
  let edge: RunningEdge;
  let dir: string;

  beforeAll(async () => {
    served = await serveFetch(origin.handle);
    dir = mkdtempSync(join(tmpdir(), "parrot-stall-"));
    const configText = `[edge]
name = "s"
origin = "${served.url}"
access_log = false
slice_bytes = ${SLICE}
slice_threshold_bytes = ${2 * SLICE}
lock_timeout_ms = 2000
origin_idle_timeout_ms = 1500
`;
    edge = runtime === "miniflare"
      ? await startEdgeMiniflare({ configText })
      : await startEdgeWorkerd({ configText, storeDir: join(dir, "store"), processes: runtime === "workerd" ? 1 : 2, log: () => {} });
  }, 60_000);

  afterAll(async () => {
    origin.releaseStalls();
    await edge?.stop();
    await served?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("the stalled fetch is given up and closed, and every client of the slice gets every byte from a fresh fetch", async () => {
    const path = "/stall.iso";
    const object: Script = { size: SIZE, ranges: true, headers: { etag: '"v1"', "cache-control": "max-age=600" } };
    origin.set(path, { ...object, stallAfter: MiB });
    const first = fetch(`${edge.url}${path}`);
    // The first request has its (stalling) answer; every later one gets the whole slice.
    expect(await waitFor(async () => (origin.hitsOf(path) === 1 ? true : undefined), DEADLINE_MS, 10)).toBeDefined();
    origin.set(path, object);
    expect(await waitFor(async () => (origin.stalls.stalled >= 1 ? true : undefined), DEADLINE_MS, 10), "the origin stalls").toBeDefined();
    const waiting = fetch(`${edge.url}${path}`); // waits for the stalled slice's lock

    for (const [who, answer] of [["the first client", first], ["the waiting client", waiting]] as const) {
      const res = await within(answer, who);
      expect(res.status, who).toBe(200);
      const bytes = new Uint8Array(await within(res.arrayBuffer(), `${who}'s body`));
      expect(bytes.byteLength, who).toBe(SIZE);
      expect(Buffer.compare(bytes, pattern(SIZE)), who).toBe(0);
    }
    // The stalled fetch was closed, and its slice fetched again once, for both clients.
    expect(origin.stalls.closedByClient).toBe(1);
    expect(origin.ranges.get(path)!.filter((r) => r === `bytes=0-${SLICE - 1}`).length).toBe(2);

    const hits = origin.hitsOf(path);
    const again = await fetch(`${edge.url}${path}`);
    expect(again.headers.get("x-cache-status")).toBe("HIT");
    expect(Buffer.compare(new Uint8Array(await again.arrayBuffer()), pattern(SIZE))).toBe(0);
    expect(origin.hitsOf(path)).toBe(hits);
  }, 120_000);
});
