/**
 * The GeoDNS node's command line (scripts/dns.ts runs it from a bundle, see dns-bundle.ts): `npm run dns -- --config <file> --port <http-port> --dns-port <udp/tcp-port> [--tls-port <n>]
 * [--dot-port <n>] [--host <addr>] [--workers <n>]`; DNSSEC helpers: `npm run dns -- keygen --out <file>` (a new
 * P-256 key) and `npm run dns -- ds --config <file> [--anchors]` (the DNSKEY and DS records to publish).
 * Parses the arguments; src/node/ does the rest.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "./children.ts";
import { keysReport, writeNewKey } from "./dns-keys.ts";
import { runDnsNode } from "./dns-node.ts";

const USAGE = `usage: npm run dns -- [--config cdn.toml] [--port 8053] [--dns-port 5353] [--tls-port 8443] [--dot-port 853] [--host 127.0.0.1] [--workers 1]
       npm run dns -- keygen --out ksk.pem
       npm run dns -- ds [--config cdn.toml] [--anchors]
`;

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

let parsed;
try {
  parsed = parseArgs({
    options: {
      config: { type: "string" },
      port: { type: "string" },
      "dns-port": { type: "string" },
      "tls-port": { type: "string" },
      "dot-port": { type: "string" },
      host: { type: "string" },
      workers: { type: "string" },
      out: { type: "string" },
      anchors: { type: "boolean" },
      help: { type: "boolean" },
    },
    allowPositionals: true,
    strict: true,
  });
} catch (err) {
  fail((err as Error).message);
}
const { values, positionals } = parsed;
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const configPath = resolve(values.config ?? resolve(ROOT, "cdn.toml"));
const command = positionals[0];
if (positionals.length > 1 || (command !== undefined && command !== "keygen" && command !== "ds")) fail(`unknown command ${positionals.join(" ")}\n${USAGE}`);

if (command === "keygen") {
  if (!values.out) fail("keygen needs --out FILE");
  try {
    writeNewKey(values.out);
  } catch (err) {
    fail(`cannot write ${values.out}: ${(err as Error).message}`);
  }
  process.stdout.write(`wrote a new ECDSA P-256 key (DNSSEC algorithm 13) to ${values.out}\n`);
} else if (command === "ds") {
  try {
    process.stdout.write(await keysReport(configPath, !!values.anchors));
  } catch (err) {
    fail((err as Error).message);
  }
} else {
  const workers = values.workers === undefined ? 1 : Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) fail("--workers must be a whole number from 1 to 64");
  try {
    await runDnsNode({
      configPath,
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
}
