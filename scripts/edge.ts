/**
 * npm run edge -- [--config cdn.toml] [--origin URL] [--port 8787] [--host 127.0.0.1] [--name NAME]
 *                 [--runtime workerd|miniflare] [--store DIR] [--persist DIR] [--processes N]
 * Puts the edge cache in front of an origin and prints its address when ready.
 *   workerd (default): bare workerd with the project's disk store ([edge] store_dir, or --store DIR); --processes N
 *     (or [edge] processes) runs N edge workerd processes sharing the socket and one store process
 *   miniflare: the edge under Miniflare, its Cache API in memory or in --persist DIR
 */
import { parseArgs } from "node:util";
import { loadConfigFile, withOverrides } from "../src/node/config-file.ts";
import { parseConfig } from "../src/config/config.ts";
import { originsOf } from "../src/config/edge-schema.ts";
import { startEdgeMiniflare, type RunningEdge } from "../src/node/edge-host.ts";
import { startEdgeWorkerd } from "../src/node/workerd-host.ts";
import { startAnycast } from "../src/anycast/host.ts";

const { values } = parseArgs({
  options: {
    config: { type: "string", default: "cdn.toml" },
    origin: { type: "string" },
    port: { type: "string", default: "8787" },
    host: { type: "string", default: "127.0.0.1" },
    persist: { type: "string" },
    store: { type: "string" },
    name: { type: "string" },
    runtime: { type: "string", default: "workerd" },
    processes: { type: "string" },
  },
});

if (values.runtime !== "workerd" && values.runtime !== "miniflare") {
  console.error(`--runtime must be workerd or miniflare, not ${values.runtime}`);
  process.exit(2);
}
const processes = values.processes === undefined ? undefined : Number(values.processes);
if (processes !== undefined && !(Number.isInteger(processes) && processes >= 1 && processes <= 256)) {
  console.error(`--processes must be a whole number from 1 to 256, not ${values.processes}`);
  process.exit(2);
}
const file = loadConfigFile(values.config!);
const configText = withOverrides(file, { origin: values.origin, name: values.name });
const origin = originsOf(parseConfig(configText).edge!).map((o) => o.url).join(", ");
let edge: RunningEdge;
let stopping = false;
if (values.runtime === "miniflare") {
  edge = await startEdgeMiniflare({ configText, host: values.host, port: Number(values.port), persistDir: values.persist });
} else {
  const w = await startEdgeWorkerd({
    configText,
    host: values.host,
    port: Number(values.port),
    storeDir: values.store ?? values.persist,
    processes,
  });
  for (const p of [w.proc, ...w.supervisors]) {
    p.once("exit", (code, signal) => {
      if (stopping) return;
      console.error(`${p === w.proc ? "workerd" : "edge supervisor"} exited (${code ?? signal})`);
      void w.stop().finally(() => process.exit(1));
    });
  }
  console.log(`store: ${w.storeDir} (${w.recovered.entries} entries, ${w.recovered.removed} files removed at start)`);
  console.log(`workerd pid: ${w.proc.pid}`);
  if (w.supervisors.length) console.log(`edge processes: ${w.supervisors.length} (workerd pids ${w.edgePids().join(" ")})`);
  edge = w;
}
// [anycast] service = "edge": announce this box's prefixes while its health endpoint is good.
const anycast = await startAnycast("edge", { config: parseConfig(configText), source: file.path, check: { kind: "http", url: edge.url } }).catch(
  async (err: Error) => {
    console.error(`anycast: ${err.message}`);
    await edge.stop();
    process.exit(2);
  },
);
console.log(`edge ready: ${edge.url} -> origin ${origin} (${values.runtime})`);
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await anycast?.withdraw(); // routers first, then the listener: in-flight connections finish
  await edge.stop();
  await anycast?.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
