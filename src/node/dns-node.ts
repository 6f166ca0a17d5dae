/**
 * The GeoDNS node as a Node process (`npm run dns`): loads cdn.toml and everything it names (GeoIP files, TLS
 * certificate; paths relative to the config file), starts the listeners (dns-host.ts) and the edge probes, and the
 * extra processes of `--workers` (dns-cluster.ts).
 *
 * Live reload: SIGHUP or `POST /admin/reload` re-reads cdn.toml and the GeoIP files, builds the new node next to the
 * running one and swaps it in one step (the answer core reads the current node per query: no query is lost and the
 * PID stays); anything wrong keeps the running node and logs why. A changed GeoIP file (the daily update) is noticed
 * by polling its size and time and taken after a sanity check. Listener addresses and ports need a restart.
 */
import { hostPrivacyKey } from "./privacy-key.ts";
import { readFileSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, resolve } from "node:path";
import { startAnycast, type RunningAnycast } from "../anycast/host.ts";
import { parseConfig, ConfigError, type CdnConfig } from "../config/config.ts";
import { ChallengeStore, type ChallengeChange } from "../dns/challenges.ts";
import { answerWire } from "../dns/doh.ts";
import { createDnsNode, type DnsNodeParts } from "../dns/node.ts";
import type { ReloadHook } from "../dns/operator.ts";
import { parseCidr, type Cidr } from "../net/ip.ts";
import type { PresenceFollower } from "../control/presence-follower.ts";
import { startWorkers, type DnsWorkers } from "./dns-cluster.ts";
import { loadGeoIp, withGeoipCity, type LoadedGeoIp } from "./dns-geoip.ts";
import type { bootGeoip, GeoipFollower } from "../control/geoip-follower.ts";
import { loadZoneKeys } from "./dns-keys.ts";
import { lineSink, startHost, type Host, type StreamLimits, type UdpGate } from "./dns-host.ts";
import type { DnsObserver } from "../dns/observe.ts";
import type { ProcessMemory } from "../dns/operator.ts";
import { processMemory } from "./process-memory.ts";
import { ResponseRateLimiter, rrlSettings } from "../dns/rrl.ts";
import type { Peer } from "./serve-fetch.ts";

/** What `npm run dns` was asked for. */
export interface DnsNodeCli {
  configPath: string;
  host?: string;
  dnsPort: number;
  httpPort: number;
  tlsPort?: number;
  dotPort?: number;
  workers: number;
}

/** Most values one node holds for ACME clients (issue 10's contract). */
export const MAX_CHALLENGE_VALUES = 1000;

/** Everything a configuration file leads to: the config, its GeoIP data, TLS files and the node's parts. */
export interface NodeState {
  configPath: string;
  configText: string;
  config: CdnConfig;
  geo: LoadedGeoIp;
  tls?: { cert: Buffer; key: Buffer };
  parts: DnsNodeParts;
}

/** What stays the same across reloads of one process. */
export interface NodeRuntime {
  challenges: ChallengeStore;
  /** UDP response rate limiting; its budgets carry over reloads. */
  rrl: ResponseRateLimiter;
  /** Processes of the node (the RRL budget is split between them). */
  processes: number;
  write: (line: string) => void;
  log: (line: string) => void;
  /** The primary's reload (set once it runs); worker processes have none. */
  reload?: ReloadHook;
  canReload: boolean;
  /** The primary passes challenge changes on to its workers. */
  onChallenge?: (change: ChallengeChange) => void;
  /** The listeners' evictions (the primary's host, once it listens). */
  evicted?: () => Record<string, number>;
  /** The memory of the node's processes (the primary's; workers have none). */
  memory?: () => ProcessMemory[];
}

/** Parses the text and loads what it names; throws with the field and reason (nothing is changed). */
export async function loadState(
  configPath: string,
  configText: string,
  rt: NodeRuntime,
  previous?: NodeState,
  strictGeo = false,
): Promise<NodeState> {
  const config = parseConfig(configText, configPath);
  const dns = config.dns;
  if (!dns) throw new Error(`${configPath} has no [dns] section`);
  const baseDir = dirname(configPath);
  const geo = await loadGeoIp(config.geoip, baseDir, { previous: previous?.geo, strict: strictGeo, log: rt.log });
  let tls: NodeState["tls"];
  if (dns.tls_cert && dns.tls_key) {
    try {
      tls = { cert: await readFile(resolve(baseDir, dns.tls_cert)), key: await readFile(resolve(baseDir, dns.tls_key)) };
    } catch (err) {
      throw new Error(`dns.tls_cert/tls_key: ${(err as Error).message}`);
    }
  }
  const trusted = dns.trusted_proxies.map((c) => parseCidr(c)).filter((c): c is Cidr => c !== null);
  const keys = await loadZoneKeys(config, baseDir);
  const parts = createDnsNode(config, {
    keys,
    geoip: geo.geoip,
    trusted,
    write: rt.write,
    privacyKey: hostPrivacyKey(),
    node: hostname(),
    previous: previous?.parts,
    challenges: rt.challenges,
    onChallenge: (c) => rt.onChallenge?.(c),
    evicted: () => rt.evicted?.() ?? {},
    memory: () => rt.memory?.() ?? [],
    reload: rt.canReload ? () => rt.reload!() : undefined,
  });
  return { configPath, configText, config, geo, tls, parts };
}

/** Takes a loaded state's settings into the runtime's long-lived parts (after the swap). */
export function applyState(rt: NodeRuntime, state: NodeState): void {
  rt.rrl.configure(rrlSettings(state.config.dns!.rrl, rt.processes));
}

/** The UDP gate: response rate limiting, its verdicts counted by the current observer. */
export function udpGate(rt: NodeRuntime, observer: () => DnsObserver): UdpGate {
  return (peer) => {
    const verdict = rt.rrl.check(peer);
    if (verdict !== "answer") observer().limited(verdict);
    return verdict;
  };
}

/** The stream listeners' bounds from [dns.limits]. */
export function streamLimits(config: CdnConfig): StreamLimits {
  const l = config.dns!.limits;
  return {
    connections: { max: l.connections, perClient: l.connections_per_client },
    messageMs: l.message_ms,
    idleMs: l.idle_ms,
    handshakeMs: l.tls_handshake_ms,
  };
}

/** Reads the config file's text; throws with the path and reason. */
function readConfigText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/** Runs the node until SIGTERM/SIGINT; throws (before listening) when the configuration or a listener fails. */
export async function runDnsNode(cli: DnsNodeCli): Promise<void> {
  const configPath = resolve(cli.configPath);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const sink = lineSink((chunk) => process.stdout.write(chunk));
  process.on("exit", () => sink.flush());
  const rt: NodeRuntime = {
    challenges: new ChallengeStore(MAX_CHALLENGE_VALUES),
    rrl: new ResponseRateLimiter(rrlSettings({ rate: 0, slip: 0, ipv4_prefix: 24, ipv6_prefix: 56, exempt: [], table_size: 100 })),
    processes: cli.workers,
    write: sink.line,
    log: out,
    canReload: true,
    reload: async () => ({ ok: false, error: "the node is still starting" }),
  };
  // [geoip] fleet = true: the fleet's current City database, fetched before the node answers with geo data.
  let fleetCity: string | undefined;
  const geoipFleet = await fleetGeoipOptions(configPath, log);
  // The control plane's modules (NATS and its dependencies: a few MB of code) load only for a node that uses them.
  const fleetGeoip = geoipFleet && (await import("../control/geoip-follower.ts"));
  if (geoipFleet) {
    const boot = await fleetGeoip!.bootGeoip(geoipFleet, geoipFleet.cfg.catch_up_timeout_ms);
    fleetCity = boot.path;
    out(`dns geoip: ${boot.source}`);
    geoipFleet.started = boot;
  }
  const withFleet = (text: string) => withGeoipCity(text, fleetCity);
  let state: NodeState;
  try {
    state = await loadState(configPath, withFleet(readConfigText(configPath)), rt);
  } catch (err) {
    throw new Error(err instanceof ConfigError ? err.message : (err as Error).message);
  }
  applyState(rt, state);
  const dns = state.config.dns!;
  if (cli.tlsPort !== undefined && !state.tls) throw new Error("--tls-port needs dns.tls_cert and dns.tls_key in the config");
  if (cli.dotPort !== undefined && !state.tls) throw new Error("--dot-port needs dns.tls_cert and dns.tls_key in the config");
  if (state.tls && cli.tlsPort === undefined && cli.dotPort === undefined)
    log("dns: dns.tls_cert is set but neither --tls-port nor --dot-port is given: no DoH over TLS, no DoT");

  // Stay up whatever happens to one query.
  process.on("uncaughtException", (err) => log(`dns: uncaught: ${err.stack ?? err}`));
  process.on("unhandledRejection", (err) => log(`dns: unhandled: ${err}`));

  const hostOptions = {
    fetch: (request: Request, peer: Peer) => {
      Object.defineProperty(request, "cf", { value: { clientIp: peer.address.includes(":") ? `[${peer.address}]:${peer.port}` : `${peer.address}:${peer.port}` } });
      return state.parts.fetch(request);
    },
    answer: (msg: Uint8Array, peer: Uint8Array | null, transport: "udp" | "tcp" | "dot" | "doh") => answerWire(msg, peer, state.parts.server, transport),
    host: cli.host ?? dns.listen,
    dnsPort: cli.dnsPort,
    httpPort: cli.httpPort,
    tlsPort: cli.tlsPort, // only where told: a certificate alone opens no port
    dotPort: cli.dotPort,
    tls: state.tls,
    maxUdpSize: dns.max_udp_size,
    maxInflight: dns.max_inflight,
    udpIo: dns.udp_io,
    reusePort: cli.workers > 1,
    limits: streamLimits(state.config),
    udpGate: udpGate(rt, () => state.parts.observer),
    log,
  };
  let host: Host;
  try {
    host = await startHost(hostOptions);
  } catch (err) {
    throw new Error(`cannot listen: ${(err as Error).message}`);
  }

  rt.evicted = () => host.evicted();
  let workers: DnsWorkers | undefined;
  /** The workers' memory as they last reported it (with their stats, every second), by pid. */
  const workerMemory = new Map<number, ProcessMemory>();
  rt.memory = () => [processMemory(), ...(workers?.pids ?? []).flatMap((pid) => workerMemory.get(pid) ?? [])];
  // With [control]: the edges' heartbeats count with the probes (a box whose heartbeats stop leaves answers).
  const heartbeats = state.config.control ? (await import("../control/presence-follower.ts")).followPresence(state.config.control, `parrot-dns ${hostname()}`, log) : undefined;
  let stopProbes = startProbes(state.parts, () => workers, heartbeats);
  let reloading: Promise<unknown> = Promise.resolve();

  /** Loads the file (or `configText`) and swaps it in; the old state stays on any error. */
  const reload = (reason: string, opts: { configText?: string; strictGeo?: boolean } = {}) => {
    const run = async (): Promise<{ ok: true } | { ok: false; error: string }> => {
      let next: NodeState;
      try {
        next = await loadState(configPath, withFleet(opts.configText ?? readConfigText(configPath)), rt, state, opts.strictGeo);
      } catch (err) {
        const error = err instanceof ConfigError ? err.problems.join("; ") : (err as Error).message;
        log(`dns: reload (${reason}) refused, the running configuration stays: ${error}`);
        return { ok: false, error };
      }
      const before = state;
      state = next; // the swap: the next query is answered by the new node
      applyState(rt, state);
      stopProbes();
      stopProbes = startProbes(state.parts, () => workers, heartbeats);
      const d = state.config.dns!;
      Object.assign(hostOptions, { maxUdpSize: d.max_udp_size, maxInflight: d.max_inflight });
      host.setLimits(streamLimits(state.config));
      if (state.tls && (state.tls.cert !== before.tls?.cert || state.tls.key !== before.tls?.key)) host.setTls(state.tls);
      if ((cli.host ?? d.listen) !== hostOptions.host) log("dns: [dns] listen changed: restart the node to listen there");
      if (d.udp_io !== hostOptions.udpIo) log("dns: [dns] udp_io changed: restart the node to change its UDP I/O");
      workers?.send({ type: "reload", configText: state.configText });
      watchGeoIp();
      out(`dns reload (${reason}): zone ${state.parts.server.zone.origin}, ${state.config.edges.length} edges, GeoIP ${state.geo === before.geo ? "unchanged" : "reloaded"}`);
      return { ok: true };
    };
    const result = reloading.then(run, run);
    reloading = result;
    return result;
  };
  rt.reload = () => reload("admin call");
  rt.onChallenge = (change) => workers?.send({ type: "challenges", changes: [change] });

  // A changed GeoIP file: reload once its size and time have stopped changing, with the sanity check. Each poll
  // compares the file on disk with the one loaded (not with the last poll: a file replaced while a reload ran is
  // still a change), and a version already tried (refused) is not tried again until it changes.
  let geoPoll: ReturnType<typeof setInterval> | undefined;
  let geoTimer: ReturnType<typeof setTimeout> | undefined;
  function watchGeoIp() {
    clearInterval(geoPoll);
    const every = state.config.geoip.watch_interval_ms;
    if (every <= 0 || state.geo.embedded) return;
    const tried = new Map<string, string>();
    const poll = () => {
      for (const loaded of state.geo.files) {
        void stat(loaded.path).then(
          (cur) => {
            const seen = `${cur.mtimeMs} ${cur.size}`;
            if ((cur.mtimeMs === loaded.mtimeMs && cur.size === loaded.size) || tried.get(loaded.path) === seen) return;
            tried.set(loaded.path, seen); // a file still being written changes again, and restarts the wait
            clearTimeout(geoTimer);
            geoTimer = setTimeout(() => void reload(`GeoIP file ${loaded.path} changed`, { configText: state.configText, strictGeo: true }), every);
          },
          () => undefined, // missing for a moment (a replace in two steps): the next poll sees it
        );
      }
    };
    geoPoll = setInterval(poll, every);
    geoPoll.unref();
    poll();
  }
  watchGeoIp();

  // A new fleet version: the node reloads with it (checked again by the reload; refused → the old data stays).
  const geoipFollower: GeoipFollower | undefined =
    geoipFleet &&
    fleetGeoip!.followGeoip(geoipFleet, geoipFleet.started!, async (path, v) => {
      const before = fleetCity;
      fleetCity = path;
      const result = await reload(`fleet GeoIP version ${v.version}`, { configText: state.configText });
      if (!result.ok) {
        fleetCity = before;
        throw new Error(result.error);
      }
    });

  let anycast: RunningAnycast | undefined;
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await anycast?.withdraw(); // routers first, then the sockets
    stopProbes();
    await heartbeats?.stop();
    await geoipFollower?.stop();
    workers?.stop();
    clearInterval(geoPoll);
    clearTimeout(geoTimer);
    await host.close();
    await anycast?.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
  process.on("SIGHUP", () => void reload("SIGHUP"));

  if (cli.workers > 1 && host.udp) {
    try {
      workers = await startWorkers(cli.workers, host.udp, { configPath, configText: state.configText, processes: cli.workers }, {
        initial: () => [
          { type: "health", states: state.parts.monitor.snapshot() },
          { type: "challenges", changes: rt.challenges.snapshot() },
        ],
        stats: (delta, memory) => {
          state.parts.observer.absorb(delta);
          if (memory) workerMemory.set(memory.pid, memory);
        },
        reloaded: (pid, error) => error && log(`dns: worker ${pid} kept its previous configuration: ${error}`),
        log,
      });
    } catch (err) {
      stopProbes();
      await host.close();
      throw new Error(`cannot start workers: ${(err as Error).message}`);
    }
  }
  const zone = state.parts.server.zone;
  // [anycast] service = "dns": announce this node's prefixes while it answers a real query over UDP.
  const udp = host.udp;
  if (state.config.anycast?.service === "dns") {
    if (!udp) throw new Error('[anycast] service = "dns" needs the UDP listener (--dns-port)');
    try {
      anycast = await startAnycast("dns", { config: state.config, source: configPath, check: { kind: "dns", host: udp.address, port: udp.port, zone: zone.origin } });
    } catch (err) {
      workers?.stop();
      stopProbes();
      await host.close();
      throw new Error(`anycast: ${(err as Error).message}`);
    }
  }
  const more = cli.workers > 1 ? ` processes ${cli.workers}` : "";
  out(`dns zone ${zone.origin} director ${zone.director.key} edges ${zone.sites.length}${more} pid ${process.pid}`);
  const h = state.parts.monitor.settings;
  const probed = state.config.edges.filter((e) => e.url).length;
  out(
    `dns health ${probed} of ${zone.sites.length} edges probed every ${h.intervalMs} ms (timeout ${h.timeoutMs} ms, down after ${h.downAfter}, up after ${h.upAfter}, min up ${h.minUp}); query log ${dns.query_log ? "on" : "off"}`,
  );
  for (const line of host.addresses) out(line);
}

/** `[geoip] fleet = true`: how this node follows the fleet's GeoIP (its folder beside the config file), else undefined. */
async function fleetGeoipOptions(configPath: string, log: (line: string) => void) {
  let config: CdnConfig;
  try {
    config = parseConfig(readConfigText(configPath), configPath);
  } catch {
    return undefined; // loadState says what is wrong
  }
  if (!config.geoip.fleet) return undefined;
  const cfg = config.control;
  if (!cfg) throw new Error("geoip.fleet: the fleet's GeoIP travels through NATS JetStream: the config needs [control]");
  const name = cfg.name ?? hostname();
  return {
    cfg,
    role: "dns" as const,
    name,
    dir: resolve(dirname(configPath), ".geoip-fleet"),
    log: (line: string) => log(`dns: ${line}`),
    started: undefined as Awaited<ReturnType<typeof bootGeoip>> | undefined,
  };
}

/** Starts a node's probe timer; health changes go on to the workers. Returns the stop function. */
function startProbes(parts: DnsNodeParts, workers: () => DnsWorkers | undefined, heartbeats?: PresenceFollower): () => void {
  if (heartbeats) {
    parts.monitor.heartbeats = (edge) => heartbeats.problem(edge);
    parts.monitor.heartbeatState = (edge) => heartbeats.describe(edge);
  }
  parts.monitor.onChange(() => workers()?.send({ type: "health", states: parts.monitor.snapshot() }));
  return parts.monitor.start();
}
