/**
 * npm start: the whole CDN on this machine from the embedded default cdn.toml — the demo origin, an edge in front
 * of it, and the DNS node — then the seed's "how to test the CDN" checks, adapted to it. Ctrl-C stops everything.
 */
import { parseArgs } from "node:util";
import { demoOrigin } from "../src/demo-origin/origin.ts";
import { loadConfigFile } from "../src/node/config-file.ts";
import { startEdgeMiniflare } from "../src/node/edge-host.ts";
import { serveFetch } from "../src/node/serve-fetch.ts";

const { values } = parseArgs({
  options: {
    config: { type: "string", default: "cdn.toml" },
    port: { type: "string", default: "8787" },
    "origin-port": { type: "string", default: "8080" },
  },
});

const file = loadConfigFile(values.config!);
const origin = await serveFetch(demoOrigin, { port: Number(values["origin-port"]) });
console.log(`demo origin: ${origin.url}`);
const edge = await startEdgeMiniflare({ configText: file.text, port: Number(values.port) });
console.log(`edge:        ${edge.url}  (origin ${file.config.edge?.origin})`);
console.log(`
Test how the CDN caches content (run it twice: MISS, then HIT):
  curl -sI ${edge.url}/img/logo.png | grep -i X-Cache-Status
`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await Promise.allSettled([edge.stop(), origin.close()]);
  process.exit(0);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
