#!/usr/bin/env bash
# Purge benchmark (not a test). Five edge boxes (bare workerd, `npm run edge`) on 127.0.0.2-6 and an origin, twice:
#   fanout     no [control]: the purge endpoint calls every other edge over HTTP
#   jetstream  [control] with a JetStream nats-server on loopback: the purge is published, every box's agent applies it
# For each purge: the URL is stored at all five edges (MISS, HIT), then a purge call goes to the first edge while every
# edge is polled back to back; the propagation time is call → the last edge's first MISS. Then (jetstream), with every
# box running:
#   burst    1,000 purges published in 10 s (100/s): publish → every edge reports it applied, p50/p99
#   backlog  10,000 purges published as fast as they are stored, then one more: that purge's publish → applied at every
#            edge, and each edge's rate over the 10,001 (first publish → its report of the last), purges/s, next to the
#            publish rate (its ceiling; scripts/bench/purge-rate.sh measures the rate alone, with fewer edges)
# Then one box is stopped, 10,000 purges (one URL each) are published, and the box is started again: the agent's
# catch-up time (replay of the 10,000 messages, from its log) and the box's start → "edge ready".
# Modes alternate, fresh processes per mode and run; the summary is the median of the runs.
# Needs: nats-server curl python3. Usage: scripts/bench/purge.sh [purges per run, default 50] [runs, default 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
PURGES=${1:-50}
RUNS=${2:-3}
NODE=$PWD/node_modules/.bin/node
export PATH=$PWD/node_modules/.bin:$PATH
command -v nats-server >/dev/null || { echo "nats-server not installed (apt-get install nats-server)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

cat > "$T/bench.ts" <<TS
import { request } from "node:http";
import { agent, cacheStatus, freePort, startBenchOrigin } from "$PWD/scripts/bench/purge-fleet.ts";
import { writeFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startNodeScript, type Running } from "$PWD/src/node/children.ts";
import { startNatsServer } from "$PWD/src/control/nats-server.ts";
import { parseConfig } from "$PWD/src/config/config.ts";
import { connectOnce } from "$PWD/src/control/nats.ts";
import { ControlClient } from "$PWD/src/control/client.ts";

const DIR = "$T";
const PURGES = $PURGES;
const RUNS = $RUNS;
const MISSED = 10_000;
const TOKEN = "bench-admin-token-0123456789";
const HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"];
const NAMES = ["e1", "e2", "e3", "e4", "e5"];

const { url: originUrl, server: origin } = await startBenchOrigin();
const get = cacheStatus;
function post(host: string, port: number, path: string, body: unknown): Promise<number> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: "POST", agent, headers: { host: "www.example.org", authorization: "Bearer " + TOKEN, "content-type": "application/json", "content-length": Buffer.byteLength(data) } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode!));
    });
    req.on("error", reject);
    req.end(data);
  });
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
};
const median = (xs: number[]) => quantile(xs, 0.5);

async function runMode(mode: "fanout" | "jetstream", run: number) {
  const dir = join(DIR, run + "-" + mode);
  mkdirSync(dir, { recursive: true });
  const port = await freePort(HOSTS[0]);
  let nats: Awaited<ReturnType<typeof startNatsServer>> | undefined;
  let control = "";
  if (mode === "jetstream") {
    nats = await startNatsServer({ dir: join(dir, "nats"), serverName: "bench", port: 0 });
    control = '[control]\nservers = ["' + nats.url + '"]\nreport_ms = 0\ncatch_up_timeout_ms = 120000\n';
  }
  const edges = NAMES.map((n, i) => '[[edges]]\nname = "' + n + '"\nurl = "http://' + HOSTS[i] + ':' + port + '"\nlat = 0\nlon = 0\n').join("\n");
  const config = join(dir, "cdn.toml");
  writeFileSync(config, '[edge]\norigin = "' + originUrl + '"\naccess_log = false\n\n[admin]\ntoken = "' + TOKEN + '"\n\n' + control + "\n" + edges);
  const start = (i: number) =>
    startNodeScript("scripts/edge.ts", ["--config", config, "--name", NAMES[i]!, "--host", HOSTS[i]!, "--port", String(port), "--store", join(dir, "store-" + NAMES[i])], /edge ready/, 180_000);
  const started = await Promise.allSettled(NAMES.map((_, i) => start(i)));
  const running: Running[] = started.filter((s) => s.status === "fulfilled").map((s) => s.value);
  const failed = started.find((s) => s.status === "rejected");
  if (failed) {
    await Promise.allSettled(running.map((r) => r.stop()));
    await nats?.stop();
    throw failed.reason;
  }
  const times: number[] = [];
  try {
    for (let n = 0; n < PURGES; n++) {
      const path = "/b/" + n;
      for (const h of HOSTS) {
        await get(h, port, path);
        if ((await get(h, port, path)) !== "HIT") throw new Error("not stored at " + h);
      }
      await new Promise((r) => setTimeout(r, 5));
      const t0 = performance.now();
      const call = post(HOSTS[0]!, port, "/.well-known/cdn/purge", { urls: ["http://www.example.org" + path] });
      const seen = await Promise.all(
        HOSTS.map(async (h) => {
          for (;;) {
            if ((await get(h, port, path)) === "MISS") return performance.now() - t0;
            if (performance.now() - t0 > 10_000) throw new Error("no MISS at " + h + " within 10 s");
          }
        }),
      );
      const status = await call;
      if (status !== 200 && status !== 202) throw new Error("purge answered " + status);
      times.push(Math.max(...seen));
    }
    const result: Record<string, number> = { p50: quantile(times, 0.5), p99: quantile(times, 0.99) };
    if (mode === "jetstream") {
      const cfg = parseConfig(readFileSync(config, "utf8")).control!;
      const nc = await connectOnce(cfg, "bench");
      const client = await ControlClient.open(nc, cfg, NAMES);
      // The burst: 1,000 purges in 10 s.
      const burst: Promise<number>[] = [];
      const tb = performance.now();
      for (let i = 0; i < 1000; i++) {
        const wait = tb + i * 10 - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        burst.push((async () => {
          const t0 = performance.now();
          const published = await client.publishPurge({ urls: ["http://www.example.org/burst/" + i] });
          const s = await client.waitApplied(published, 120_000);
          if (s.pending.length) throw new Error("burst purge " + published.seq + " not applied at " + s.pending.map((p) => p.edge).join(", "));
          return performance.now() - t0;
        })());
      }
      const burstTimes = await Promise.all(burst);
      result.burstP50 = quantile(burstTimes, 0.5);
      result.burstP99 = quantile(burstTimes, 0.99);
      // The backlog: 10,000 as fast as they are stored, then one more.
      const reached = new Map<string, number>();
      const t1 = performance.now();
      let last = 0;
      for (let i = 0; i < MISSED; i += 500) {
        const acks = await Promise.all(Array.from({ length: Math.min(500, MISSED - i) }, (_, j) => client.publishPurge({ urls: ["http://www.example.org/backlog/" + (i + j)] })));
        last = Math.max(last, ...acks.map((a) => a.seq));
      }
      const tq = performance.now();
      result.publishRate = MISSED / ((tq - t1) / 1000);
      const behind = await client.publishPurge({ urls: ["http://www.example.org/behind"] });
      await Promise.all(NAMES.map(async (n) => {
        await client.waitApplied(behind, 300_000, [n]);
        reached.set(n, performance.now());
      }));
      result.behind = Math.max(...reached.values()) - tq;
      const rates = NAMES.map((n) => (MISSED + 1) / ((reached.get(n)! - t1) / 1000));
      result.rateMin = Math.min(...rates);
      result.rateMax = Math.max(...rates);
      await running[4]!.stop();
      const tp = performance.now();
      for (let i = 0; i < MISSED; i += 500) {
        await Promise.all(Array.from({ length: Math.min(500, MISSED - i) }, (_, j) => client.publishPurge({ urls: ["http://www.example.org/missed/" + (i + j)] })));
      }
      result.publish = performance.now() - tp;
      await nc.close();
      const ts = performance.now();
      const again = await start(4);
      result.ready = performance.now() - ts;
      const m = /replayed (\d+) messages in (\d+) ms/.exec(again.output());
      if (!m || Number(m[1]) < MISSED) throw new Error("no full catch-up in the output:\n" + again.output());
      result.catchUp = Number(m[2]);
      running[4] = again;
    }
    return result;
  } catch (err) {
    // What the edges said (one may have died).
    for (const [i, r] of running.entries()) {
      const state = r.proc.exitCode ?? r.proc.signalCode;
      if (state !== null) console.error(NAMES[i] + " exited (" + state + "):\n" + r.output().slice(-3000));
    }
    throw err;
  } finally {
    await Promise.allSettled(running.map((r) => r.stop()));
    await nats?.stop();
  }
}

const results: Record<string, Record<string, number>[]> = { fanout: [], jetstream: [] };
const f = (x: number) => x.toFixed(1);
for (let run = 1; run <= RUNS; run++) {
  const order = run % 2 ? (["fanout", "jetstream"] as const) : (["jetstream", "fanout"] as const);
  for (const mode of order) {
    const r = await runMode(mode, run);
    results[mode]!.push(r);
    console.log("run " + run + " " + mode.padEnd(9) + " propagation p50 " + f(r.p50!) + " ms  p99 " + f(r.p99!) + " ms" +
      (r.burstP50 !== undefined ? "  | burst 1,000 in 10 s: p50 " + f(r.burstP50) + " ms p99 " + f(r.burstP99!) + " ms  | a purge behind 10,000: " + f(r.behind! / 1000) + " s, per edge " + f(r.rateMin!) + "–" + f(r.rateMax!) + " purges/s (published at " + f(r.publishRate!) + "/s)" : "") +
      (r.catchUp !== undefined ? "  | 10,000 missed purges: published in " + f(r.publish! / 1000) + " s, agent replay " + f(r.catchUp / 1000) + " s, box start to ready " + f(r.ready! / 1000) + " s" : ""));
  }
}
const med = (mode: string, k: string) => median(results[mode]!.map((r) => r[k]!));
console.log("");
console.log("median of " + RUNS + " runs, " + PURGES + " purges each, 5 edges on loopback (call -> every edge answers MISS):");
console.log("  fanout     p50 " + f(med("fanout", "p50")) + " ms  p99 " + f(med("fanout", "p99")) + " ms");
console.log("  jetstream  p50 " + f(med("jetstream", "p50")) + " ms  p99 " + f(med("jetstream", "p99")) + " ms  (ratio to fanout: p50 " + (med("jetstream", "p50") / med("fanout", "p50")).toFixed(2) + "x, p99 " + (med("jetstream", "p99") / med("fanout", "p99")).toFixed(2) + "x)");
console.log("  burst (1,000 purges in 10 s, publish -> applied at all 5 edges): p50 " + f(med("jetstream", "burstP50")) + " ms, p99 " + f(med("jetstream", "burstP99")) + " ms");
console.log("  a purge behind a 10,000-purge backlog at running edges: applied everywhere " + f(med("jetstream", "behind") / 1000) + " s after its publish; per edge " + f(med("jetstream", "rateMin")) + "-" + f(med("jetstream", "rateMax")) + " purges/s (published at " + f(med("jetstream", "publishRate")) + "/s: an edge that keeps up applies at that rate)");
console.log("  restarted box catching up on 10,000 missed purges: agent replay " + f(med("jetstream", "catchUp") / 1000) + " s, box start to ready " + f(med("jetstream", "ready") / 1000) + " s");
origin.close();
process.exit(0);
TS

"$NODE" "$T/bench.ts"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
