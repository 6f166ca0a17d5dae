#!/usr/bin/env bash
# Purge application rate at running edge boxes (not a test). A JetStream nats-server and EDGES edge boxes (bare
# workerd with their disk store, `npm run edge` with [control]) on 127.0.0.2…; once every box is ready, PURGES purges
# (one URL each, URLS of them stored at every edge first so hard purges have entries to remove) are published as fast
# as JetStream stores them, while every box's agent runs. Per edge: purges/s = PURGES / (first publish → the edge's
# presence report that it applied the last one), and how long after the last publish that was: an edge that keeps up
# applies at the publish rate (the measurement's ceiling, printed too) and ends a batch or two behind. The load
# average before and after: figures taken on a shared machine say so.
# Needs: nats-server. Usage: scripts/bench/purge-rate.sh [edges, default 1] [purges, default 10000] [runs, default 1]
# PROCESSES=N: edge workerd processes per box (`[edge] processes`, default 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
EDGES=${1:-1}
PURGES=${2:-10000}
RUNS=${3:-1}
PROCESSES=${PROCESSES:-1}
NODE=$PWD/node_modules/.bin/node
export PATH=$PWD/node_modules/.bin:$PATH
command -v nats-server >/dev/null || { echo "nats-server not installed (apt-get install nats-server)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

cat > "$T/bench.ts" <<TS
import { cacheStatus, freePort, startBenchOrigin } from "$PWD/scripts/bench/purge-fleet.ts";
import { writeFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startNodeScript, type Running } from "$PWD/src/node/children.ts";
import { startNatsServer } from "$PWD/src/control/nats-server.ts";
import { parseConfig } from "$PWD/src/config/config.ts";
import { connectOnce } from "$PWD/src/control/nats.ts";
import { ControlClient } from "$PWD/src/control/client.ts";

const DIR = "$T";
const EDGES = $EDGES;
const PURGES = $PURGES;
const RUNS = $RUNS;
/** URLs stored at every edge before the purges (the first ones purged). */
const STORED = Math.min(200, PURGES);
const TOKEN = "bench-admin-token-0123456789";
const HOSTS = Array.from({ length: EDGES }, (_, i) => "127.0.0." + (i + 2));
const NAMES = HOSTS.map((_, i) => "e" + (i + 1));

const { url: originUrl, server: origin } = await startBenchOrigin();
const get = cacheStatus;

async function run(n: number) {
  const dir = join(DIR, "run" + n);
  mkdirSync(dir, { recursive: true });
  const port = await freePort(HOSTS[0]!);
  const nats = await startNatsServer({ dir: join(dir, "nats"), serverName: "bench", port: 0 });
  const edges = NAMES.map((e, i) => '[[edges]]\nname = "' + e + '"\nurl = "http://' + HOSTS[i] + ":" + port + '"\nlat = 0\nlon = 0\n').join("\n");
  const config = join(dir, "cdn.toml");
  writeFileSync(config, '[edge]\norigin = "' + originUrl + '"\naccess_log = false\nprocesses = $PROCESSES\n\n[admin]\ntoken = "' + TOKEN + '"\n\n[control]\nservers = ["' + nats.url + '"]\nreport_ms = 0\ncatch_up_timeout_ms = 120000\n\n' + edges);
  const started = await Promise.allSettled(NAMES.map((e, i) =>
    startNodeScript("scripts/edge.ts", ["--config", config, "--name", e, "--host", HOSTS[i]!, "--port", String(port), "--store", join(dir, "store-" + e)], /edge ready/, 180_000)));
  const running: Running[] = started.filter((s) => s.status === "fulfilled").map((s) => s.value);
  try {
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    for (const h of HOSTS) for (let i = 0; i < STORED; i++) await get(h, port, "/rate/" + i);
    const cfg = parseConfig(readFileSync(config, "utf8")).control!;
    const nc = await connectOnce(cfg, "bench");
    const client = await ControlClient.open(nc, cfg, NAMES);
    const t0 = performance.now();
    let last = { stream: "", seq: 0 };
    for (let i = 0; i < PURGES; i += 500) {
      const acks = await Promise.all(Array.from({ length: Math.min(500, PURGES - i) }, (_, j) => client.publishPurge({ urls: ["http://www.example.org/rate/" + (i + j)] })));
      for (const a of acks) if (a.seq > last.seq) last = a;
    }
    const published = performance.now() - t0;
    const applied = await Promise.all(NAMES.map(async (e) => {
      const s = await client.waitApplied(last, 600_000, [e]);
      if (s.pending.length) throw new Error(e + " did not apply the purges within 600 s");
      return performance.now() - t0;
    }));
    // Every stored URL was purged: the next request for one is a MISS at every edge.
    for (const h of HOSTS) for (const i of [0, STORED - 1]) {
      const status = await get(h, port, "/rate/" + i);
      if (status !== "MISS") throw new Error("/rate/" + i + " at " + h + " after its purge: " + status);
    }
    await nc.close();
    const rates = applied.map((ms) => PURGES / (ms / 1000));
    console.log("run " + n + ": " + PURGES + " purges published in " + (published / 1000).toFixed(2) + " s (" + Math.round(PURGES / (published / 1000)) + "/s); applied per edge: " +
      NAMES.map((e, i) => e + " " + Math.round(rates[i]!) + " purges/s (all applied " + ((applied[i]! - published) / 1000).toFixed(2) + " s after the last publish)").join(", "));
  } catch (err) {
    for (const [i, r] of running.entries()) {
      const state = r.proc.exitCode ?? r.proc.signalCode;
      if (state !== null) console.error(NAMES[i] + " exited (" + state + "):\n" + r.output().slice(-3000));
    }
    throw err;
  } finally {
    await Promise.allSettled(running.map((r) => r.stop()));
    await nats.stop();
  }
}

for (let n = 1; n <= RUNS; n++) await run(n);
origin.close();
process.exit(0);
TS

"$NODE" "$T/bench.ts"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
