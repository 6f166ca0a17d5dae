/**
 * The GeoDNS node: `npm run dns -- --config <file> --port <http-port> --dns-port <udp/tcp-port> [--tls-port <n>]
 * [--host <addr>]`. Serves classic DNS on UDP+TCP, DoH over plain HTTP, and DoH over TLS (HTTP/2 + HTTP/1.1) when
 * [dns] tls_cert/tls_key are set; all through the same fetch handler as the worker. Prints one line per listener.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseConfig, ConfigError } from "../src/config/config.ts";
import { parseCidr, type Cidr } from "../src/net/ip.ts";
import { createDohHandler } from "../src/dns/doh.ts";
import { buildZone } from "../src/dns/zone.ts";
import { loadGeoIp } from "../src/node/dns-geoip.ts";
import { startHost } from "../src/node/dns-host.ts";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");

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

let args;
try {
  args = parseArgs({
    options: {
      config: { type: "string" },
      port: { type: "string" },
      "dns-port": { type: "string" },
      "tls-port": { type: "string" },
      host: { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  }).values;
} catch (err) {
  fail((err as Error).message);
}
if (args.help) {
  process.stdout.write(
    "usage: npm run dns -- [--config cdn.toml] [--port 8053] [--dns-port 5353] [--tls-port 8443] [--host 127.0.0.1]\n",
  );
  process.exit(0);
}

const configPath = resolve(args.config ?? resolve(repo, "cdn.toml"));
const baseDir = dirname(configPath);
let config;
try {
  config = parseConfig(readFileSync(configPath, "utf8"), configPath);
} catch (err) {
  fail(err instanceof ConfigError ? err.message : `cannot read ${configPath}: ${(err as Error).message}`);
}
const dns = config.dns ?? fail(`${configPath} has no [dns] section`);

let zone;
let geoip;
try {
  zone = buildZone(config);
  geoip = loadGeoIp(config.geoip, baseDir, (line) => process.stdout.write(`${line}\n`));
} catch (err) {
  fail((err as Error).message);
}
const trusted = dns.trusted_proxies.map((c) => parseCidr(c) ?? fail(`dns.trusted_proxies: ${c} is not a CIDR`)) as Cidr[];
const server = { zone, geoip, udpSize: dns.max_udp_size, random: Math.random };
const fetch = createDohHandler(() => server, trusted);

const tlsPort = port("tls-port", args["tls-port"]);
let tls;
if (dns.tls_cert && dns.tls_key) {
  try {
    tls = { cert: readFileSync(resolve(baseDir, dns.tls_cert)), key: readFileSync(resolve(baseDir, dns.tls_key)) };
  } catch (err) {
    fail(`dns.tls_cert/tls_key: ${(err as Error).message}`);
  }
} else if (tlsPort !== undefined) fail("--tls-port needs dns.tls_cert and dns.tls_key in the config");

// Stay up whatever happens to one query.
process.on("uncaughtException", (err) => process.stderr.write(`dns: uncaught: ${err.stack ?? err}\n`));
process.on("unhandledRejection", (err) => process.stderr.write(`dns: unhandled: ${err}\n`));

try {
  const host = await startHost({
    fetch,
    host: args.host ?? dns.listen,
    dnsPort: port("dns-port", args["dns-port"]) ?? 5353,
    httpPort: port("port", args.port) ?? 8053,
    tlsPort: tls ? (tlsPort ?? 8443) : undefined,
    tls,
    maxUdpSize: dns.max_udp_size,
    maxInflight: dns.max_inflight,
    maxTcpConnections: dns.max_tcp_connections,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`dns zone ${zone.origin} director ${zone.director.key} edges ${zone.sites.length}\n`);
  for (const line of host.addresses) process.stdout.write(`${line}\n`);
  const stop = () => void host.close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} catch (err) {
  fail(`cannot listen: ${(err as Error).message}`);
}
