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
import { prepareControl, runControlAgent } from "../src/control/host.ts";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";

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
const config = parseConfig(configText);
const origin = originsOf(config.edge!).map((o) => o.url).join(", ");
// [control]: a box start id and the control agent's socket, bound into the edge before it starts.
const storeDir = values.store ?? values.persist ?? (values.runtime === "workerd" ? config.edge!.store_dir : undefined);
let control: ReturnType<typeof prepareControl> | undefined;
try {
  if (config.control) control = prepareControl(config, storeDir ? join(resolve(storeDir), ".run") : join(tmpdir(), `parrot-${process.pid}`));
} catch (err) {
  console.error(`${file.path}: ${(err as Error).message}`);
  process.exit(2);
}
let edge: RunningEdge;
let stopping = false;
if (values.runtime === "miniflare") {
  edge = await startEdgeMiniflare({ configText, host: values.host, port: Number(values.port), persistDir: values.persist, control });
} else {
  const w = await startEdgeWorkerd({
    configText,
    host: values.host,
    port: Number(values.port),
    storeDir: values.store ?? values.persist,
    processes,
    control,
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
const agent = control ? await runControlAgent(config, control, edge.url, (line) => console.log(line)) : undefined;
if (!control) console.log("control: direct fan-out to [[edges]] urls (no [control])");
console.log(`edge ready: ${edge.url} -> origin ${origin} (${values.runtime})`);
const stop = async () => {
  stopping = true;
  await agent?.stop();
  await edge.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
