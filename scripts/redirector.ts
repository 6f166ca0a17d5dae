/**
 * The mirror redirector: `npm run redirector -- [--config cdn.toml] [--port 8790] [--host 127.0.0.1] [--name BOX]`. Sends each
 * download under [redirector] paths to the nearest mirror that has that exact file ([[mirrors]]), the CDN otherwise.
 * Parses the arguments; src/node/redirector-host.ts does the rest. SIGHUP reads the config again.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { runRedirector } from "../src/node/redirector-host.ts";

const USAGE = "usage: npm run redirector -- [--config cdn.toml] [--port 8790] [--host 127.0.0.1] [--name BOX]\n";

function fail(message: string): never {
  process.stderr.write(`redirector: ${message}\n`);
  process.exit(2);
}

let values;
try {
  values = parseArgs({ options: { config: { type: "string" }, port: { type: "string" }, host: { type: "string" }, name: { type: "string" }, help: { type: "boolean" } }, strict: true }).values;
} catch (err) {
  fail((err as Error).message);
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const port = values.port === undefined ? undefined : Number(values.port);
if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) fail("--port must be a port number (0 picks a free one)");
if (values.name !== undefined && !/^[A-Za-z0-9._-]{1,128}$/.test(values.name)) fail("--name: letters, digits, '.', '_' and '-' only (at most 128)");
try {
  const host = await runRedirector({ configPath: resolve(values.config ?? "cdn.toml"), port, host: values.host, name: values.name });
  process.on("SIGHUP", () => void host.reload());
  const stop = () => void host.close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  const r = host.current();
  process.stdout.write(`redirector ready: ${host.url} (${r.mirrors.length} mirrors, ${r.catalog.size} files)\n`);
} catch (err) {
  fail((err as Error).message);
}
