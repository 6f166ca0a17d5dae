/**
 * One DNS node's parts, wired the same way in the Node host and the worker: the zone, the health monitor the
 * director consults, the query observer (metrics, query log) and the HTTP handler (operator endpoints, then DoH).
 * Runtime-agnostic: the host decides how probes run (timer or request-driven) and where log lines go.
 *
 * A reload builds new parts from the new config next to the old ones (`previous`): the observer's counters go on,
 * edge health carries over by edge name (an operator's drain stays; a drain from the config follows the new config).
 */
import { ClientAddresses, type DailyKey } from "../privacy/client-addresses.ts";
import type { CdnConfig } from "../config/config.ts";
import type { HealthConfig } from "../config/dns-schema.ts";
import type { GeoIp } from "../geoip/geoip.ts";
import { HealthMonitor, type MonitorSettings } from "../health/monitor.ts";
import type { Cidr } from "../net/ip.ts";
import type { Server } from "./answer.ts";
import type { ProcessMemory } from "./operator.ts";
import type { ChallengeChange, ChallengeStore } from "./challenges.ts";
import { ALGORITHM_ECDSAP256SHA256, type ZoneKey } from "./dnssec/keys.ts";
import { ZoneSigner } from "./dnssec/sign.ts";
import { createDohHandler } from "./doh.ts";
import { encodeName } from "./names.ts";
import { DnsObserver } from "./observe.ts";
import { createOperator, type ReloadHook } from "./operator.ts";
import { buildZone } from "./zone.ts";

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export const HEALTH_DEFAULTS: HealthConfig = { interval_ms: 10_000, timeout_ms: 3_000, down_after: 3, up_after: 3, min_up: 1 };

/** The monitor's settings from [dns.health]. */
export function monitorSettings(h: HealthConfig | undefined): MonitorSettings {
  const c = h ?? HEALTH_DEFAULTS;
  return { intervalMs: c.interval_ms, timeoutMs: c.timeout_ms, downAfter: c.down_after, upAfter: c.up_after, minUp: c.min_up };
}

export interface DnsNodeParts {
  config: CdnConfig;
  server: Server;
  monitor: HealthMonitor;
  observer: DnsObserver;
  /** Operator endpoints (/admin/*, /metrics, /status, /status.json), then DoH (/dns-query, /resolve). */
  fetch: (request: Request) => Promise<Response>;
}

export interface DnsNodeOptions {
  geoip: GeoIp;
  trusted?: Cidr[];
  /** Where query log lines go when [dns] query_log is on. */
  write?: (line: string) => void;
  node: string;
  /** For probes and the status page's edge metrics. */
  fetchImpl?: FetchLike;
  now?: () => number;
  /** The parts this node replaces (a reload): their counters and edge health go on. */
  previous?: DnsNodeParts;
  /** POST /admin/reload: re-reads the configuration (hosts that can). */
  reload?: ReloadHook;
  /** ACME challenge records (kept across reloads by the host); without it the node holds none. */
  challenges?: ChallengeStore;
  /** Told about every change of the challenge records. */
  onChallenge?: (change: ChallengeChange) => void;
  /** DNSSEC keys for [dns.dnssec] (the host reads them); a signed config without them is refused. */
  keys?: ZoneKey[];
  /** The key of the day for hashed client addresses in the query log (the host's, shared with its workers). */
  privacyKey?: DailyKey;
  /** The host's connections closed to make room, per listener (for /metrics). */
  evicted?: () => Record<string, number>;
  /** The memory of the host's processes (for /metrics). */
  memory?: () => ProcessMemory[];
}

/** Builds the parts; throws with a message naming the field when the config contradicts itself. */
export function createDnsNode(config: CdnConfig, o: DnsNodeOptions): DnsNodeParts {
  const dns = config.dns;
  if (!dns) throw new Error("cdn.toml has no [dns] section");
  const keys = o.keys ?? [];
  if (dns.dnssec && keys.length === 0) throw new Error("dns.dnssec: this host cannot read key files; serve a signed zone from the Node host (npm run dns)");
  const zone = buildZone(config, keys.map((k) => ({ flags: k.flags, algorithm: ALGORITHM_ECDSAP256SHA256, key: k.rdata.subarray(4) })));
  const dnssec = dns.dnssec ? new ZoneSigner(encodeName(zone.origin), keys, dns.dnssec.signature_validity, o.now) : undefined;
  const fetchImpl: FetchLike = o.fetchImpl ?? ((input, init) => fetch(input, init));
  const monitor = new HealthMonitor(
    config.edges.map((e) => ({ name: e.name, url: e.url, drain: e.drain })),
    monitorSettings(dns.health),
    fetchImpl,
    o.now,
  );
  if (o.previous) carryHealth(o.previous, monitor, config);
  const write = dns.query_log ? o.write : undefined;
  const addresses = new ClientAddresses(config.privacy, o.privacyKey ?? o.previous?.observer.addressKey);
  const observer = o.previous ? o.previous.observer.withWrite(write, addresses) : new DnsObserver({ write, addresses });
  const server: Server = { zone, geoip: o.geoip, udpSize: dns.max_udp_size, health: monitor, observer, challenges: o.challenges, dnssec };
  const operator = createOperator({ config, server, monitor, observer, node: o.node, fetchImpl, now: o.now, reload: o.reload, onChallenge: o.onChallenge, evicted: o.evicted, memory: o.memory });
  const doh = createDohHandler(() => server, o.trusted ?? []);
  return {
    config,
    server,
    monitor,
    observer,
    fetch: async (request) => {
      try {
        return await (operator(request) ?? doh(request));
      } catch (err) {
        return new Response(`internal error: ${(err as Error).message}\n`, { status: 500 });
      }
    },
  };
}

/** Edge states from the parts a reload replaces: an operator's drain stays, a config drain follows the new config. */
function carryHealth(previous: DnsNodeParts, monitor: HealthMonitor, config: CdnConfig): void {
  const oldConfigDrain = new Set(previous.config.edges.filter((e) => e.drain).map((e) => e.name));
  const newConfigDrain = new Set(config.edges.filter((e) => e.drain).map((e) => e.name));
  monitor.replace(
    previous.monitor.snapshot().map((h) => ({
      ...h,
      drained: (h.drained && !oldConfigDrain.has(h.name)) || newConfigDrain.has(h.name),
    })),
  );
}
