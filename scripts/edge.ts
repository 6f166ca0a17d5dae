/**
 * npm run edge -- [--config cdn.toml] [--origin URL] [--port 8787] [--host 127.0.0.1] [--persist DIR]
 * Puts the edge cache in front of an origin and prints its address when ready.
 */
import { parseArgs } from "node:util";
import { loadConfigFile, withOverrides } from "../src/node/config-file.ts";
import { parseConfig } from "../src/config/config.ts";
import { startEdgeMiniflare } from "../src/node/edge-host.ts";

const { values } = parseArgs({
  options: {
    config: { type: "string", default: "cdn.toml" },
    origin: { type: "string" },
    port: { type: "string", default: "8787" },
    host: { type: "string", default: "127.0.0.1" },
    persist: { type: "string" },
    name: { type: "string" },
  },
});

const file = loadConfigFile(values.config!);
const configText = withOverrides(file, { origin: values.origin, name: values.name });
const edge = await startEdgeMiniflare({
  configText,
  host: values.host,
  port: Number(values.port),
  persistDir: values.persist,
});
const origin = parseConfig(configText).edge!.origin;
console.log(`edge ready: ${edge.url} -> origin ${origin}`);
const stop = async () => {
  await edge.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
