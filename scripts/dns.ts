/**
 * The GeoDNS node: `npm run dns -- --config <file> --port <http-port> --dns-port <udp/tcp-port> [--tls-port <n>]
 * [--host <addr>] [--workers <n>]`. Serves classic DNS on UDP+TCP, DoH over plain HTTP, and DoH over TLS (HTTP/2 +
 * HTTP/1.1) when [dns] tls_cert/tls_key are set; all through the same answer core as the worker (doh.ts answerWire).
 * With --workers n > 1, n - 1 more processes (each with its own GeoIP copy) read from the same UDP socket. Prints one
 * line per listener once everything serves.
 *
 * The primary process probes the edges ([dns.health], `HealthMonitor.start`) and passes every change of state on to
 * the extra processes; they report their query counts back every second, so /metrics and /status cover them all.
 * The HTTP listener also serves the operator endpoints (src/dns/operator.ts). Query log lines ([dns] query_log) go
 * to stdout, one JSON object per line.
 */
import { fork, type ChildProcess } from "node:child_process";
import { hostname } from "node:os";
import type { Socket as UdpSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseConfig, ConfigError } from "../src/config/config.ts";
import { parseCidr, type Cidr } from "../src/net/ip.ts";
import { answerWire } from "../src/dns/doh.ts";
import { createDnsNode } from "../src/dns/node.ts";
import type { StatsDelta } from "../src/dns/observe.ts";
import type { EdgeHealth } from "../src/health/health.ts";
import { loadGeoIp } from "../src/node/dns-geoip.ts";
import { lineSink, serveDnsSockets, startHost } from "../src/node/dns-host.ts";
import { startAnycast, type RunningAnycast } from "../src/anycast/host.ts";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** Set in the extra processes that --workers starts: they answer on the parent's UDP socket only. */
const isWorker = process.env.PARROT_DNS_WORKER === "1" && typeof process.send === "function";
let stopping = false;

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

function parseCli() {
  return parseArgs({
    options: {
      config: { type: "string" },
      port: { type: "string" },
      "dns-port": { type: "string" },
      "tls-port": { type: "string" },
      host: { type: "string" },
      workers: { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  }).values;
}
let args: ReturnType<typeof parseCli>;
try {
  args = parseCli();
} catch (err) {
  fail((err as Error).message);
}
if (args.help) {
  process.stdout.write(
    "usage: npm run dns -- [--config cdn.toml] [--port 8053] [--dns-port 5353] [--tls-port 8443] [--host 127.0.0.1] [--workers 1]\n",
  );
  process.exit(0);
}

const configPath = resolve(args.config ?? resolve(repo, "cdn.toml"));
const baseDir = dirname(configPath);
let config: ReturnType<typeof parseConfig>;
try {
  config = parseConfig(readFileSync(configPath, "utf8"), configPath);
} catch (err) {
  fail(err instanceof ConfigError ? err.message : `cannot read ${configPath}: ${(err as Error).message}`);
}
const dns = config.dns ?? fail(`${configPath} has no [dns] section`);

const trusted = dns.trusted_proxies.map((c) => parseCidr(c) ?? fail(`dns.trusted_proxies: ${c} is not a CIDR`)) as Cidr[];
const sink = lineSink((chunk) => process.stdout.write(chunk));
let node: ReturnType<typeof createDnsNode>;
try {
  const geoip = loadGeoIp(config.geoip, baseDir, (line) => isWorker || process.stdout.write(`${line}\n`));
  node = createDnsNode(config, { geoip, trusted, write: sink.line, node: hostname() });
} catch (err) {
  fail((err as Error).message);
}
const { server, monitor, observer, fetch } = node;
const zone = server.zone;
const answer = (msg: Uint8Array, peer: Uint8Array | null, transport: "udp" | "tcp" | "doh") => answerWire(msg, peer, server, transport);
process.on("exit", () => sink.flush());
const log = (line: string) => process.stderr.write(`${line}\n`);
const workers = args.workers === undefined ? 1 : Number(args.workers);
if (!Number.isInteger(workers) || workers < 1 || workers > 64) fail("--workers must be a whole number from 1 to 64");

// Stay up whatever happens to one query.
process.on("uncaughtException", (err) => process.stderr.write(`dns: uncaught: ${err.stack ?? err}\n`));
process.on("unhandledRejection", (err) => process.stderr.write(`dns: unhandled: ${err}\n`));

if (isWorker) {
  // An extra process: wait for the parent's UDP socket, serve it, leave with the parent.
  // Health comes from the primary (one prober per node); query counts go back to it every second.
  process.on("message", (msg: { dns?: string; health?: Array<{ name: string } & EdgeHealth> }, handle: unknown) => {
    if (msg?.health) return monitor.replace(msg.health);
    if (msg?.dns !== "udp" || !handle) return;
    const limits = { maxUdpSize: dns.max_udp_size, maxInflight: dns.max_inflight, maxTcpConnections: dns.max_tcp_connections };
    serveDnsSockets(handle as UdpSocket, undefined, { answer, ...limits, log });
    process.send!("serving");
  });
  setInterval(() => {
    const delta = observer.takeDelta();
    if (delta && process.connected) process.send!({ stats: delta });
  }, 1000).unref();
  process.on("disconnect", () => process.exit(0));
  process.send!("loaded");
} else await main();

/** The primary process: all listeners, then the extra processes, then the address lines. */
async function main() {
  const tlsPort = port("tls-port", args["tls-port"]);
  let tls;
  if (dns.tls_cert && dns.tls_key) {
    try {
      tls = { cert: readFileSync(resolve(baseDir, dns.tls_cert)), key: readFileSync(resolve(baseDir, dns.tls_key)) };
    } catch (err) {
      fail(`dns.tls_cert/tls_key: ${(err as Error).message}`);
    }
  } else if (tlsPort !== undefined) fail("--tls-port needs dns.tls_cert and dns.tls_key in the config");

  let host: Awaited<ReturnType<typeof startHost>>;
  try {
    host = await startHost({
      fetch,
      answer,
      host: args.host ?? dns.listen,
      dnsPort: port("dns-port", args["dns-port"]) ?? 5353,
      httpPort: port("port", args.port) ?? 8053,
      tlsPort: tls ? (tlsPort ?? 8443) : undefined,
      tls,
      maxUdpSize: dns.max_udp_size,
      maxInflight: dns.max_inflight,
      maxTcpConnections: dns.max_tcp_connections,
      log,
    });
  } catch (err) {
    fail(`cannot listen: ${(err as Error).message}`);
  }
  const children: ChildProcess[] = [];
  const stopProbes = monitor.start();
  monitor.onChange(() => {
    const health = monitor.snapshot();
    for (const c of children) if (c.connected) c.send({ health });
  });
  let anycast: RunningAnycast | undefined;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await anycast?.withdraw(); // routers first, then the sockets
    stopProbes();
    for (const c of children) c.kill();
    await host.close();
    await anycast?.stop();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  if (workers > 1 && host.dnsSockets) {
    try {
      await startWorkers(workers, host.dnsSockets.udp, children);
    } catch (err) {
      stopping = true;
      for (const c of children) c.kill();
      fail(`cannot start workers: ${(err as Error).message}`);
    }
  }
  // [anycast] service = "dns": announce this node's prefixes while it answers a real query over UDP.
  const udp = host.dnsSockets?.udp.address();
  if (config.anycast?.service === "dns" && !udp) fail("[anycast] service = \"dns\" needs the UDP listener (--dns-port)");
  try {
    if (udp) anycast = await startAnycast("dns", { config, source: configPath, check: { kind: "dns", host: udp.address, port: udp.port, zone: zone.origin } });
  } catch (err) {
    fail(`anycast: ${(err as Error).message}`);
  }
  const more = workers > 1 ? ` processes ${workers}` : "";
  process.stdout.write(`dns zone ${zone.origin} director ${zone.director.key} edges ${zone.sites.length}${more}\n`);
  const h = monitor.settings;
  const probed = config.edges.filter((e) => e.url).length;
  process.stdout.write(
    `dns health ${probed} of ${zone.sites.length} edges probed every ${h.intervalMs} ms (timeout ${h.timeoutMs} ms, down after ${h.downAfter}, up after ${h.upAfter}, min up ${h.minUp}); query log ${dns.query_log ? "on" : "off"}\n`,
  );
  for (const line of host.addresses) process.stdout.write(`${line}\n`);
}

/** Starts n - 1 extra processes on the UDP socket (each loads the config and GeoIP itself); resolves when all serve. */
async function startWorkers(n: number, udp: UdpSocket, children: ChildProcess[]): Promise<void> {
  const script = fileURLToPath(import.meta.url);
  await Promise.all(
    Array.from({ length: n - 1 }, () => {
      const child = fork(script, process.argv.slice(2), {
        env: { ...process.env, PARROT_DNS_WORKER: "1" },
        stdio: ["ignore", "inherit", "inherit", "ipc"], // stdout: their query log lines
      });
      children.push(child);
      return new Promise<void>((ok, no) => {
        child.on("message", (m: string | { stats?: StatsDelta }) => {
          if (m === "loaded") {
            child.send({ health: monitor.snapshot() });
            child.send({ dns: "udp" }, udp);
          }
          if (m === "serving") ok();
          if (typeof m === "object" && m?.stats) observer.absorb(m.stats);
        });
        child.once("exit", (code, signal) => {
          no(new Error(`worker exited ${code ?? signal}`));
          if (!stopping) log(`dns: worker ${child.pid} exited (${code ?? signal}); the other processes go on`);
        });
      });
    }),
  );
}
