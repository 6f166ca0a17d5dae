/**
 * Mixed load against an edge box on bare workerd, reporting each edge workerd's RSS every round (a measurement, not a
 * test; issue 18, item 9: does RSS level off under mixed load?).
 *
 *   npx node scripts/bench/mixed-load.ts [--processes 2] [--rounds 6] [--round-seconds 30] [--concurrency 16]
 *                                        [--hot-max-bytes N]
 *
 * The load, per request drawn at random: 50 % HITs of 200 small objects (1–16 KB), 15 % MISSes (unique URLs, stored),
 * 15 % revalidations (max-age=1 with an ETag: 304s), 5 % POSTs (client invalidations), 15 % 1,000-byte Ranges into a
 * 48 MiB object (sliced). Origin, load and edge on this machine; traffic on 127.0.0.1.
 */
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createHash } from "node:crypto";

const { values } = parseArgs({
  options: {
    processes: { type: "string", default: "2" },
    rounds: { type: "string", default: "6" },
    "round-seconds": { type: "string", default: "30" },
    concurrency: { type: "string", default: "16" },
    "hot-max-bytes": { type: "string" },
  },
});
const ROOT = resolve(import.meta.dirname, "../..");
const BIG = 48 * 1024 * 1024;
const bigByte = (i: number) => (i * 31 + (i >>> 12)) & 0xff;

const origin = createServer((req, res) => {
  const url = new URL(req.url!, "http://x");
  req.resume();
  req.on("end", () => {
    if (req.method === "POST") return void res.writeHead(200, { "content-length": 2 }).end("ok");
    const p = url.pathname;
    if (p.startsWith("/big")) {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
      const [a, b] = m ? [Number(m[1]), Math.min(Number(m[2]), BIG - 1)] : [0, BIG - 1];
      const body = Buffer.alloc(b - a + 1);
      for (let i = 0; i < body.length; i++) body[i] = bigByte(a + i);
      const h: Record<string, string | number> = { "cache-control": "max-age=3600", etag: '"big-1"', "content-length": body.length, "accept-ranges": "bytes" };
      if (m) h["content-range"] = `bytes ${a}-${b}/${BIG}`;
      return void res.writeHead(m ? 206 : 200, h).end(body);
    }
    if (p.startsWith("/short/")) {
      if (req.headers["if-none-match"] === '"s1"') return void res.writeHead(304, { etag: '"s1"', "cache-control": "max-age=1" }).end();
      return void res.writeHead(200, { etag: '"s1"', "cache-control": "max-age=1", "content-length": 4096 }).end(Buffer.alloc(4096, 115));
    }
    const size = 1024 + (createHash("sha1").update(p).digest()[0]! % 16) * 1024;
    res.writeHead(200, { "cache-control": "max-age=3600", "content-length": size }).end(Buffer.alloc(size, 104));
  });
});
await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
const originUrl = `http://127.0.0.1:${(origin.address() as { port: number }).port}`;

const dir = mkdtempSync(join(tmpdir(), "parrot-mixed-"));
const TOKEN = "mixed-load-token-0123456789";
const hot = values["hot-max-bytes"] ? `hot_max_bytes = ${values["hot-max-bytes"]}\n` : "";
writeFileSync(join(dir, "cdn.toml"), `[edge]\norigin = "${originUrl}"\naccess_log = false\n${hot}[admin]\ntoken = "${TOKEN}"\n`);
const edgeProc = spawn(process.execPath, [join(ROOT, "scripts/edge.ts"), "--config", join(dir, "cdn.toml"), "--port", "0", "--store", join(dir, "store"), "--processes", values.processes!], { cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
let out = "";
edgeProc.stderr!.on("data", (c: Buffer) => void (out += c));
const edgeUrl = await new Promise<string>((res, rej) => {
  const t = setTimeout(() => rej(new Error(`edge not ready:\n${out}`)), 60_000);
  edgeProc.stdout!.on("data", (c: Buffer) => {
    out += c;
    const m = /edge ready: (http:\/\/\S+)/.exec(out);
    if (m) {
      clearTimeout(t);
      res(m[1]!);
    }
  });
});

/** RSS (MB) of each workerd serving this run's folder. */
function rss(): string {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!cmd.includes("workerd") || !cmd.includes(dir) || !cmd.includes("serve")) continue;
      const st = readFileSync(`/proc/${pid}/status`, "utf8");
      const kb = (f: string) => Math.round(Number(new RegExp(`${f}:\\s+(\\d+)`).exec(st)?.[1] ?? 0) / 1024);
      found.push(`${pid}:${kb("VmRSS")}(peak ${kb("VmHWM")})`);
    } catch {
      /* gone */
    }
  }
  return found.join(" ");
}

/** The memory tier and the store as one process's metrics say (a scrape reaches one of the processes). */
async function tiers(): Promise<string> {
  const text = await (await fetch(`${edgeUrl}/.well-known/cdn/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
  const v = (name: string) => /^(\S+) (\S+)$/m.exec(text.split("\n").filter((l) => l.startsWith(name + " ") || l.startsWith(name + "{")).join("\n"))?.[2];
  return `hot ${Math.round(Number(v("parrot_edge_store_hot_bytes")) / 1024 / 1024)} MB / ${v("parrot_edge_store_hot_entries")} entries, store ${v("parrot_edge_store_entries")} entries`;
}

let miss = 0;
let errors = 0;
let done = 0;
async function one() {
  const r = Math.random();
  let res: Response;
  if (r < 0.5) res = await fetch(`${edgeUrl}/hit/${Math.floor(Math.random() * 200)}`);
  else if (r < 0.65) res = await fetch(`${edgeUrl}/miss/${miss++}`);
  else if (r < 0.8) res = await fetch(`${edgeUrl}/short/${Math.floor(Math.random() * 50)}`);
  else if (r < 0.85) res = await fetch(`${edgeUrl}/hit/${Math.floor(Math.random() * 200)}`, { method: "POST", body: "x" });
  else {
    const a = Math.floor(Math.random() * (BIG - 1000));
    res = await fetch(`${edgeUrl}/big`, { headers: { range: `bytes=${a}-${a + 999}` } });
    const body = new Uint8Array(await res.arrayBuffer());
    if (res.status !== 206 || body.length !== 1000 || body.some((v, i) => v !== bigByte(a + i))) errors++;
    done++;
    return;
  }
  await res.arrayBuffer();
  if (res.status !== 200) errors++;
  done++;
}

console.log(`edge ${edgeUrl} (${values.processes} processes); start: ${rss()}`);
try {
  for (let round = 1; round <= Number(values.rounds); round++) {
    const until = Date.now() + Number(values["round-seconds"]) * 1000;
    const before = done;
    await Promise.all(
      Array.from({ length: Number(values.concurrency) }, async () => {
        while (Date.now() < until) await one().catch(() => void errors++);
      }),
    );
    console.log(`round ${round}: ${done - before} requests, ${errors} errors so far; RSS MB ${rss()}; ${await tiers()}`);
  }
} finally {
  process.kill(-edgeProc.pid!, "SIGTERM");
  await new Promise((r) => edgeProc.once("exit", r));
  origin.close();
  rmSync(dir, { recursive: true, force: true });
}
