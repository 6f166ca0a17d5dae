/**
 * Memory under many concurrent small Ranges into a large stored object, on a one-process bare workerd box (edge and
 * store in one workerd): every store read of a block holds a 1 MiB buffer (the block's digest is checked before a
 * byte of it leaves), so without a bound 800 concurrent Ranges held 800 MiB of blocks at once (issue 18: one process
 * went from 76 MB to 2,058 MB). The store now reads at most a few blocks at once and keeps only the bytes a range
 * needs: the rest wait their turn.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answerGenerated, chunkMatches, type GeneratedObject } from "../../src/demo-origin/generated.ts";
import type { RunningWorkerdEdge } from "../../src/node/workerd-host.ts";
import { startEdgeAndOrigin, type EdgeAndOrigin } from "../support/workerd-edge.ts";

const MiB = 1024 * 1024;
const SIZE = 48 * MiB; // 12 slices of 4 MiB
const RANGES = 800;
const RANGE_BYTES = 1000;
/** Peak RSS growth allowed during the burst (MB). Measured: 133 MB with the bound, 369 MB before it (289 MB at 600 Ranges). */
const PEAK_GROWTH_MB = 220;

let box: EdgeAndOrigin;
let edge: RunningWorkerdEdge;
const obj: GeneratedObject = { size: SIZE, cacheControl: "public, max-age=3600", contentType: "application/octet-stream" };
/** Stored whole (no slices): a Range of it is read by the store beside the whole body the lookup opened. */
const wholeObj: GeneratedObject = { ...obj, size: 30 * MiB };
/** Measured: 183–295 MB with the bound, 553 MB before it (the lookup's whole-body read still reads its first block). */
const WHOLE_PEAK_GROWTH_MB = 450;

beforeAll(async () => {
  box = await startEdgeAndOrigin(
    "range-memory",
    (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/big.iso") return answerGenerated(req, obj);
      if (path === "/whole/big.iso") return answerGenerated(req, wholeObj);
      return new Response("no\n", { status: 404 });
    },
    (origin) => `[edge]\nname = "ranges"\norigin = "${origin}"\nslice_bytes = ${4 * MiB}\nslice_threshold_bytes = ${8 * MiB}\naccess_log = false\n[[rules]]\npath = "/whole/**"\nslice_threshold_bytes = 0\n`,
    { processes: 1 },
  );
  edge = box.edge;
}, 60_000);

afterAll(async () => {
  await box?.stop();
});

/** VmRSS and VmHWM (peak) of a process, in MB. */
function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const mb = (field: string) => Math.round(Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]) / 1024);
  return { rss: mb("VmRSS"), peak: mb("VmHWM") };
}

/** One Range on its own connection: status and body bytes. */
function range(agent: Agent, path: string, start: number, end: number): Promise<{ status: number; body: Buffer }> {
  return new Promise((done, fail) => {
    const req = httpRequest(`${edge.url}${path}`, { agent, headers: { range: `bytes=${start}-${end}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => done({ status: res.statusCode!, body: Buffer.concat(chunks) }));
      res.on("error", fail);
    });
    req.on("error", fail);
    req.end();
  });
}

describe("concurrent Ranges into a large stored object", () => {
  async function burst(path: string, size: number) {
    // The whole object once: stored (every slice, or whole).
    const whole = await fetch(`${edge.url}${path}`);
    let at = 0;
    let right = true;
    for await (const chunk of whole.body as unknown as AsyncIterable<Uint8Array>) {
      right &&= chunkMatches(chunk, at);
      at += chunk.byteLength;
    }
    expect({ at, right }).toEqual({ at: size, right: true });

    const pid = edge.edgePids()[0]!;
    writeFileSync(`/proc/${pid}/clear_refs`, "5"); // the peak (VmHWM) starts again from the current RSS
    const before = memory(pid);
    const agent = new Agent({ keepAlive: false, maxSockets: RANGES });
    // Spread over every slice and block, each Range inside one 1 MiB block (deterministic offsets).
    const starts = Array.from({ length: RANGES }, (_, i) => ((i * 7_919 * 4_099) % (size / 4_096 - 1)) * 4_096 + (i % 3_000));
    const began = performance.now();
    const answers = await Promise.all(starts.map((s) => range(agent, path, s, s + RANGE_BYTES - 1)));
    const seconds = (performance.now() - began) / 1000;
    agent.destroy();
    const after = memory(pid);
    const wrong = answers.filter((a, i) => a.status !== 206 || a.body.byteLength !== RANGE_BYTES || !chunkMatches(a.body, starts[i]!));
    expect(wrong.length).toBe(0);
    console.log(`range-memory ${path}: RSS ${before.rss} MB before, peak ${after.peak} MB, ${after.rss} MB after ${RANGES} Ranges (${Math.round(RANGES / seconds)} answers/s)`);
    return after.peak - before.rss;
  }

  it(`${RANGES} concurrent 1,000-byte Ranges into a sliced object: every answer's bytes right, the process's peak RSS grows less than ${PEAK_GROWTH_MB} MB`, { timeout: 120_000 }, async () => {
    expect(await burst("/big.iso", SIZE)).toBeLessThan(PEAK_GROWTH_MB);
  });

  it(`${RANGES} concurrent 1,000-byte Ranges into an object stored whole: all answered, right, peak RSS growth under ${WHOLE_PEAK_GROWTH_MB} MB`, { timeout: 120_000 }, async () => {
    expect(await burst("/whole/big.iso", wholeObj.size)).toBeLessThan(WHOLE_PEAK_GROWTH_MB);
  });
});
