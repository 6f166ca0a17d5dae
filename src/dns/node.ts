/**
 * One DNS node's parts, wired the same way in the Node host and the worker: the zone, the health monitor the
 * director consults, the query observer (metrics, query log) and the HTTP handler (operator endpoints, then DoH).
 * Runtime-agnostic: the host decides how probes run (timer or request-driven) and where log lines go.
 */
import type { CdnConfig } from "../config/config.ts";
import type { HealthConfig } from "../config/dns-schema.ts";
import type { GeoIp } from "../geoip/geoip.ts";
import { HealthMonitor, type MonitorSettings } from "../health/monitor.ts";
import type { Cidr } from "../net/ip.ts";
import type { Server } from "./answer.ts";
import { createDohHandler } from "./doh.ts";
import { DnsObserver } from "./observe.ts";
import { createOperator } from "./operator.ts";
import { buildZone } from "./zone.ts";

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export const HEALTH_DEFAULTS: HealthConfig = { interval_ms: 10_000, timeout_ms: 3_000, down_after: 3, up_after: 3, min_up: 1 };

export function monitorSettings(h: HealthConfig | undefined): MonitorSettings {
  const c = h ?? HEALTH_DEFAULTS;
  return { intervalMs: c.interval_ms, timeoutMs: c.timeout_ms, downAfter: c.down_after, upAfter: c.up_after, minUp: c.min_up };
}

export interface DnsNodeParts {
  server: Server;
  monitor: HealthMonitor;
  observer: DnsObserver;
  /** Operator endpoints (/admin/drain, /metrics, /status, /status.json), then DoH (/dns-query, /resolve). */
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
}

export function createDnsNode(config: CdnConfig, o: DnsNodeOptions): DnsNodeParts {
  const dns = config.dns;
  if (!dns) throw new Error("cdn.toml has no [dns] section");
  const zone = buildZone(config);
  const fetchImpl: FetchLike = o.fetchImpl ?? ((input, init) => fetch(input, init));
  const monitor = new HealthMonitor(
    config.edges.map((e) => ({ name: e.name, url: e.url, drain: e.drain })),
    monitorSettings(dns.health),
    fetchImpl,
    o.now,
  );
  const observer = new DnsObserver({ write: dns.query_log ? o.write : undefined });
  const server: Server = { zone, geoip: o.geoip, udpSize: dns.max_udp_size, health: monitor, observer };
  const operator = createOperator({ config, server, monitor, observer, node: o.node, fetchImpl, now: o.now });
  const doh = createDohHandler(() => server, o.trusted ?? []);
  return {
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
