/**
 * npm run edge -- (--origin URL | --config cdn.toml) [--port 8787] [--host 127.0.0.1] [--name NAME]
 *                 [--runtime workerd|miniflare] [--store DIR] [--persist DIR] [--processes N] [--https-port 443]
 *                 [--pid-file FILE]
 * Puts the edge cache in front of an origin and prints its address when ready. With --origin alone it is a plain
 * RFC 9111 cache (no operator rules); a config file brings rules, origins and the rest (--origin overrides its origin).
 *   workerd (default): bare workerd with the project's disk store ([edge] store_dir, or --store DIR); --processes N
 *     (or [edge] processes) runs N edge workerd processes and one store process
 *   miniflare: the edge under Miniflare, its Cache API in memory or in --persist DIR
 *   with [[sites]] in the config: the front door (HAProxy: HTTPS for every site, HTTP/2, limits) listens on --host at
 *     --port (plain HTTP, default [frontdoor] http_port) and --https-port, in front of workerd on loopback
 * With [control] the box's control agent (NATS JetStream) runs here too; with [anycast] service = "edge", its
 * announcer. A planned stop withdraws the anycast route first, then stops serving.
 * SIGHUP to this node process (its pid in --pid-file, default <store>/.run/edge.pid) reloads the config file; under
 * `npm run edge` the box stops when npm exits (npm dies of SIGHUP without passing it on).
 */
import { parseArgs } from "node:util";
import { runEdgeBox } from "../src/node/edge-box.ts";

const { values } = parseArgs({
  options: {
    config: { type: "string" },
    origin: { type: "string" },
    port: { type: "string" },
    "https-port": { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    persist: { type: "string" },
    store: { type: "string" },
    name: { type: "string" },
    runtime: { type: "string", default: "workerd" },
    processes: { type: "string" },
    "pid-file": { type: "string" },
  },
});

function usage(message: string): never {
  console.error(`edge: ${message}`);
  process.exit(2);
}
if (values.runtime !== "workerd" && values.runtime !== "miniflare") usage(`--runtime must be workerd or miniflare, not ${values.runtime}`);
const processes = values.processes === undefined ? undefined : Number(values.processes);
if (processes !== undefined && !(Number.isInteger(processes) && processes >= 1 && processes <= 256)) {
  usage(`--processes must be a whole number from 1 to 256, not ${values.processes}`);
}
if (!values.config && !values.origin) usage("give the origin (--origin URL) or a config file (--config cdn.toml)");

await runEdgeBox({ ...values, host: values.host!, runtime: values.runtime as "workerd" | "miniflare", processes }, usage);

