/**
 * Tiered-cache benchmark (not a test; scripts/bench/shield.sh runs it). Bare workerd edge boxes and shields on
 * loopback, one Node origin that counts bytes and requests per object.
 *   release   for each number of edges (EDGES, default "1 3 6"), without and with SHIELDS shields (default 2): fresh
 *             boxes and stores, CLIENTS clients (default 200) spread over the edges download one SIZE-byte object
 *             (default 1.5 GB) in SEGMENTS Range segments each (default 8); origin bytes and requests per object
 *   latency   one edge, small objects (1 KiB), REQUESTS distinct paths per case (default 2000), one client at a time:
 *             an edge MISS filled from the origin (no shield), from a shield that has it (HIT at the shield), and
 *             through a shield that does not (MISS at both); p50/p99 of each, and the shield hop's added latency
 * Benchmark code, not part of the CDN.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { answerGenerated, type GeneratedObject } from "../../src/demo-origin/generated.ts";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { serveFetch } from "../../src/node/serve-fetch.ts";
import { freePort } from "./purge-fleet.ts";

const env = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const SIZE = env("SIZE", 1_500_000_000);
const CLIENTS = env("CLIENTS", 200);
const SEGMENTS = env("SEGMENTS", 8);
const SHIELDS = env("SHIELDS", 2);
const REQUESTS = env("REQUESTS", 2000);
const EDGES = (process.env.EDGES ?? "1 3 6").split(/\s+/).filter(Boolean).map(Number);
const ONLY = process.env.ONLY ?? "";
const SITE = "www.example.org";
const DIR = mkdtempSync(join(tmpdir(), "parrot-bench-shield-"));

// --- the origin ----------------------------------------------------------------------------------------------------
const big: GeneratedObject = { size: SIZE, cacheControl: "public, max-age=3600" };
const sent = new Map<string, number>();
const asked = new Map<string, number>();
const SMALL = "x".repeat(1024);
const origin = await serveFetch((req) => {
  const path = new URL(req.url).pathname;
  asked.set(path, (asked.get(path) ?? 0) + 1);
  if (path.startsWith("/lat/")) return new Response(SMALL, { headers: { "cache-control": "max-age=3600", "content-type": "application/octet-stream" } });
  return answerGenerated(req, big, (n) => sent.set(path, (sent.get(path) ?? 0) + n));
});

// --- boxes ---------------------------------------------------------------------------------------------------------
const agent = new Agent({ keepAlive: true, maxSockets: 512 });
interface Box { name: string; port: number; run: Running }

async function startBoxes(edges: number, shields: number, dir: string): Promise<{ edges: Box[]; shields: Box[] }> {
  mkdirSync(dir, { recursive: true });
  const names = [...Array.from({ length: shields }, (_, i) => `shield-${i + 1}`), ...Array.from({ length: edges }, (_, i) => `edge-${i + 1}`)];
  const ports = await Promise.all(names.map(() => freePort()));
  const list = names.slice(0, shields).map((n, i) => `{ name = "${n}", url = "http://127.0.0.1:${ports[i]}" }`).join(", ");
  const boxes = await Promise.all(
    names.map(async (name, i) => {
      const config = join(dir, `${name}.toml`);
      const isShield = i < shields;
      writeFileSync(config, `[edge]\nname = "${name}"\norigin = "${origin.url}"\naccess_log = false\nstore_max_bytes = 8000000000\n${!isShield && shields ? `shields = [ ${list} ]\n` : ""}`);
      const run = await startNodeScript("scripts/edge.ts", ["--config", config, "--port", String(ports[i]), "--store", join(dir, `store-${name}`)], /edge ready/, 180_000);
      return { name, port: ports[i]!, run };
    }),
  );
  return { shields: boxes.slice(0, shields), edges: boxes.slice(shields) };
}
const stopAll = (b: { edges: Box[]; shields: Box[] }) => Promise.allSettled([...b.edges, ...b.shields].map((x) => x.run.stop()));

function get(port: number, path: string, range?: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, agent, headers: { host: SITE, ...(range ? { range } : {}) } }, (res) => {
      let bytes = 0;
      res.on("data", (c: Buffer) => (bytes += c.byteLength));
      res.on("end", () => resolve({ status: res.statusCode!, bytes }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

// --- release: origin bytes per object ------------------------------------------------------------------------------
async function release(edges: number, shields: number) {
  const boxes = await startBoxes(edges, shields, join(DIR, `release-${edges}-${shields}`));
  const path = `/release-${edges}-${shields}.iso`;
  try {
    const per = Math.ceil(SIZE / SEGMENTS);
    const t0 = performance.now();
    const parts = await Promise.all(
      Array.from({ length: CLIENTS }, (_, c) =>
        Promise.all(Array.from({ length: SEGMENTS }, (_, s) => get(boxes.edges[c % edges]!.port, path, `bytes=${s * per}-${Math.min(SIZE, (s + 1) * per) - 1}`))),
      ),
    );
    const ms = performance.now() - t0;
    const bad = parts.flat().filter((p, i) => p.status !== 206 || p.bytes !== Math.min(per, SIZE - (i % SEGMENTS) * per));
    return { bytes: (sent.get(path) ?? 0) / SIZE, requests: asked.get(path) ?? 0, s: ms / 1000, bad: bad.length };
  } finally {
    await stopAll(boxes);
  }
}

// --- latency of a shield hop -----------------------------------------------------------------------------------------
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)]!;
async function timed(port: number, paths: string[]): Promise<number[]> {
  const out: number[] = [];
  for (const p of paths) {
    const t0 = performance.now();
    const r = await get(port, p);
    out.push(performance.now() - t0);
    if (r.status !== 200) throw new Error(`${p}: ${r.status}`);
  }
  return out;
}
async function latency() {
  const paths = (tag: string) => Array.from({ length: REQUESTS }, (_, i) => `/lat/${tag}/${i}`);
  const direct = await startBoxes(1, 0, join(DIR, "lat-direct"));
  let noShield: number[];
  try {
    await timed(direct.edges[0]!.port, paths("warmup-direct").slice(0, 200));
    noShield = await timed(direct.edges[0]!.port, paths("direct"));
  } finally {
    await stopAll(direct);
  }
  const tiered = await startBoxes(1, 1, join(DIR, "lat-tiered"));
  let shieldHit: number[], shieldMiss: number[];
  try {
    await timed(tiered.edges[0]!.port, paths("warmup-tiered").slice(0, 200));
    await timed(tiered.shields[0]!.port, paths("hit")); // the shield has them (same key: Host names the site)
    shieldHit = await timed(tiered.edges[0]!.port, paths("hit"));
    shieldMiss = await timed(tiered.edges[0]!.port, paths("miss"));
  } finally {
    await stopAll(tiered);
  }
  return { noShield, shieldHit, shieldMiss };
}

const f = (x: number) => x.toFixed(2);
try {
  if (ONLY !== "latency") {
    console.log(`release: ${CLIENTS} clients x ${SEGMENTS} segments of a ${SIZE}-byte object`);
    for (const n of EDGES) {
      for (const s of [0, SHIELDS]) {
        const r = await release(n, s);
        console.log(`  ${String(n).padStart(2)} edges, ${s} shields: origin sent ${r.bytes.toFixed(3)} x the object in ${r.requests} requests (${(r.requests / Math.ceil(SIZE / (16 * 1024 * 1024))).toFixed(2)} per slice), ${r.s.toFixed(1)} s, ${r.bad} bad answers`);
      }
    }
  }
  if (ONLY !== "release") {
    const l = await latency();
    const line = (name: string, xs: number[]) => console.log(`  ${name.padEnd(42)} p50 ${f(quantile(xs, 0.5))} ms  p99 ${f(quantile(xs, 0.99))} ms`);
    console.log(`latency: ${REQUESTS} distinct 1 KiB objects per case, one at a time, edge MISS each time`);
    line("no shield (edge -> origin)", l.noShield);
    line("HIT at the shield (edge -> shield)", l.shieldHit);
    line("MISS at the shield (edge -> shield -> origin)", l.shieldMiss);
    console.log(`  shield hop added on a MISS: p50 ${f(quantile(l.shieldMiss, 0.5) - quantile(l.noShield, 0.5))} ms, p99 ${f(quantile(l.shieldMiss, 0.99) - quantile(l.noShield, 0.99))} ms; a HIT at the shield vs the origin: p50 ${f(quantile(l.shieldHit, 0.5) - quantile(l.noShield, 0.5))} ms, p99 ${f(quantile(l.shieldHit, 0.99) - quantile(l.noShield, 0.99))} ms`);
  }
} finally {
  await origin.close();
  agent.destroy();
  rmSync(DIR, { recursive: true, force: true });
}
process.exit(0);
