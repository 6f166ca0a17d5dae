/**
 * The GeoDNS node: `npm run dns -- --config <file> --port <http-port> --dns-port <udp/tcp-port> [--tls-port <n>]
 * [--dot-port <n>] [--host <addr>] [--workers <n>]`. Parses the arguments; src/node/dns-node.ts does the rest.
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runDnsNode } from "../src/node/dns-node.ts";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const USAGE =
  "usage: npm run dns -- [--config cdn.toml] [--port 8053] [--dns-port 5353] [--tls-port 8443] [--dot-port 853] [--host 127.0.0.1] [--workers 1]\n";

function fail(message: string): never {
  process.stderr.write(`dns: ${message}\n`);
  process.exit(2);
}

function port(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) fail(`--${name} must be a port number (0 picks a free one)`);
  return n;
}

let values;
try {
  values = parseArgs({
    options: {
      config: { type: "string" },
      port: { type: "string" },
      "dns-port": { type: "string" },
      "tls-port": { type: "string" },
      "dot-port": { type: "string" },
      host: { type: "string" },
      workers: { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  }).values;
} catch (err) {
  fail((err as Error).message);
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const workers = values.workers === undefined ? 1 : Number(values.workers);
if (!Number.isInteger(workers) || workers < 1 || workers > 64) fail("--workers must be a whole number from 1 to 64");

try {
  await runDnsNode({
    configPath: values.config ?? resolve(repo, "cdn.toml"),
    host: values.host,
    dnsPort: port("dns-port", values["dns-port"]) ?? 5353,
    httpPort: port("port", values.port) ?? 8053,
    tlsPort: port("tls-port", values["tls-port"]),
    dotPort: port("dot-port", values["dot-port"]),
    workers,
  });
} catch (err) {
  fail((err as Error).message);
}
