/**
 * npm run edge -- [--config cdn.toml] [--origin URL] [--port 8787] [--host 127.0.0.1] [--name NAME]
 *                 [--runtime workerd|miniflare] [--store DIR] [--persist DIR] [--processes N] [--https-port 443]
 * Puts the edge cache in front of an origin and prints its address when ready.
 *   with [[sites]] in the config: the front door (HAProxy: HTTPS for every site, HTTP/2, limits) listens on --host at
 *     --port (plain HTTP, default [frontdoor] http_port) and --https-port, in front of workerd on loopback
 *   workerd (default): bare workerd with the project's disk store ([edge] store_dir, or --store DIR); --processes N
 *     (or [edge] processes) runs N edge workerd processes sharing the socket and one store process
 *   miniflare: the edge under Miniflare, its Cache API in memory or in --persist DIR
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadConfigFile, withOverrides } from "../src/node/config-file.ts";
import { parseConfig } from "../src/config/config.ts";
import { originsOf } from "../src/config/edge-schema.ts";
import { startEdgeMiniflare, type RunningEdge } from "../src/node/edge-host.ts";
import { startEdgeWorkerd } from "../src/node/workerd-host.ts";
import { hasFrontDoor, startFrontDoor, workerdBehindFrontDoor, type RunningFrontDoor } from "../src/frontdoor/frontdoor.ts";

const { values } = parseArgs({
  options: {
    config: { type: "string", default: "cdn.toml" },
    origin: { type: "string" },
    port: { type: "string" },
    "https-port": { type: "string" },
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
const frontDoor = hasFrontDoor(config);
if (frontDoor && values.runtime !== "workerd") {
  console.error("[[sites]] (the front door) needs --runtime workerd");
  process.exit(2);
}
let edge: RunningEdge;
let door: RunningFrontDoor | undefined;
let stopping = false;
if (values.runtime === "miniflare") {
  edge = await startEdgeMiniflare({ configText, host: values.host, port: Number(values.port ?? 8787), persistDir: values.persist });
} else {
  const w = await startEdgeWorkerd({
    configText,
    host: values.host,
    port: Number(values.port ?? 8787),
    storeDir: values.store ?? values.persist,
    processes,
    ...(frontDoor ? workerdBehindFrontDoor(configText) : {}),
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
  if (frontDoor) {
    door = await startFrontDoor({
      config,
      host: values.host!,
      httpPort: values.port === undefined ? undefined : Number(values.port),
      httpsPort: values["https-port"] === undefined ? undefined : Number(values["https-port"]),
      upstream: new URL(w.url).host,
      runDir: join(w.storeDir, ".run", "frontdoor"),
    }).catch(async (err) => {
      await w.stop();
      console.error((err as Error).message);
      process.exit(1);
    });
    door.terminator.loop.once("exit", (code, signal) => {
      if (stopping) return;
      console.error(`front door supervisor exited (${code ?? signal})`);
      void w.stop().finally(() => process.exit(1));
    });
    console.log(`front door: ${door.httpsUrl} (HTTPS, h2) and ${door.httpUrl}, ${door.plan.sites.length} sites -> workerd ${w.url}`);
  }
}
console.log(`edge ready: ${door?.httpUrl ?? edge.url} -> origin ${origin} (${values.runtime})`);
const stop = async () => {
  stopping = true;
  await door?.stop();
  await edge.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
