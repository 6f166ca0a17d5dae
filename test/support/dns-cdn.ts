/**
 * For the health and status e2e tests: a small CDN of real processes on loopback — a tiny origin (serveFetch), edges
 * (`node scripts/edge.ts`, bare workerd) on 127.0.0.2, .3, .4 with one port number, and the DNS node
 * (`node scripts/dns.ts`) with the MaxMind test City database, all from one temp cdn.toml; plus real `dig` queries.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { ROOT, startNodeScript, type Running } from "../../src/node/children.ts";
import { run } from "./dns-process.ts";
import { portFreeOn } from "./ports.ts";

export const TOKEN = "e2e-admin-token-0123456789";
export const DIRECTOR = "director.geo.example.org";
/** Clients (ECS) the City test database places near each edge. */
export const CLIENT = { london: "81.2.69.142/32", milton: "216.160.83.56/32", changchun: "175.16.199.0/24" } as const;

export interface EdgeSpec {
  name: string;
  host: string;
  lat: number;
  lon: number;
  /** Give the DNS node a url to probe (default true). */
  probed?: boolean;
}

export const THREE_EDGES: EdgeSpec[] = [
  { name: "eu-lon", host: "127.0.0.2", lat: 51.51, lon: -0.13 },
  { name: "na-sea", host: "127.0.0.3", lat: 47.61, lon: -122.33 },
  { name: "as-pek", host: "127.0.0.4", lat: 39.9, lon: 116.4 },
];

export interface HealthSpec {
  interval_ms: number;
  timeout_ms: number;
  down_after: number;
  up_after: number;
  min_up?: number;
}

export interface Cdn {
  dir: string;
  config: string;
  port: number;
  origin: Served;
  dns: Running;
  dnsPort: number;
  httpPort: number;
  edgeUrl(name: string): string;
  startEdge(name: string): Promise<void>;
  stopEdge(name: string): Promise<void>;
  /** dig against the DNS node; the A/AAAA addresses of the answer (in order) and the whole output. */
  dig(...args: string[]): Promise<{ addresses: string[]; out: string }>;
  stop(): Promise<void>;
}


export async function startCdn(opts: { edges: EdgeSpec[]; health: HealthSpec; answers: number; start?: string[] }): Promise<Cdn> {
  const dir = mkdtempSync(join(tmpdir(), "parrot-dns-cdn-"));
  const origin = await serveFetch((req) => {
    const path = new URL(req.url).pathname;
    return new Response(`origin body for ${path}\n`, { headers: { "cache-control": "max-age=600", "content-type": "text/plain" } });
  });
  const port = await portFreeOn(opts.edges.map((e) => e.host));
  const h = opts.health;
  const config = join(dir, "cdn.toml");
  writeFileSync(
    config,
    `[edge]
origin = "${origin.url}"

[admin]
token = "${TOKEN}"

[dns]
zone = "geo.example.org"
ttl = 5
nameservers = ["ns1.example.org"]
hostmaster = "hostmaster.example.org"

[dns.director]
answers = ${opts.answers}

[dns.rrl]
rate = 0

[dns.health]
interval_ms = ${h.interval_ms}
timeout_ms = ${h.timeout_ms}
down_after = ${h.down_after}
up_after = ${h.up_after}
min_up = ${h.min_up ?? 1}

[geoip]
city = "${join(ROOT, "test/fixtures/GeoIP2-City-Test.mmdb")}"
${opts.edges
  .map(
    (e) => `
[[edges]]
name = "${e.name}"
${e.probed === false ? "" : `url = "http://${e.host}:${port}"\n`}ipv4 = "${e.host}"
lat = ${e.lat}
lon = ${e.lon}
`,
  )
  .join("")}`,
  );
  const edges = new Map<string, Running>();
  const spec = (name: string) => opts.edges.find((e) => e.name === name) ?? (() => { throw new Error(`no edge ${name}`); })();
  const startEdge = async (name: string) => {
    const e = spec(name);
    edges.set(
      name,
      await startNodeScript(
        "scripts/edge.ts",
        ["--config", config, "--name", name, "--host", e.host, "--port", String(port), "--store", join(dir, "store", name)],
        /edge ready: (\S+)/,
      ),
    );
  };
  const stopEdge = async (name: string) => {
    await edges.get(name)?.stop();
    edges.delete(name);
  };
  const toStart = opts.start ?? opts.edges.map((e) => e.name);
  let dns: Running | undefined;
  try {
    await Promise.all(toStart.map(startEdge));
    dns = await startNodeScript("scripts/dns.ts", ["--config", config, "--port", "0", "--dns-port", "0"], /^dns http 127\.0\.0\.1:(\d+)/m);
  } catch (err) {
    await Promise.allSettled([...edges.values()].map((e) => e.stop()));
    await origin.close();
    throw err;
  }
  const httpPort = Number(dns.match[1]);
  const dnsPort = Number(/^dns udp\+tcp 127\.0\.0\.1:(\d+)/m.exec(dns.output())![1]);
  return {
    dir,
    config,
    port,
    origin,
    dns,
    dnsPort,
    httpPort,
    edgeUrl: (name) => `http://${spec(name).host}:${port}`,
    startEdge,
    stopEdge,
    async dig(...args) {
      const r = await run("dig", ["@127.0.0.1", "-p", String(dnsPort), "+time=2", "+tries=1", ...args]);
      const addresses = [...r.out.matchAll(/^\S+\s+\d+\s+IN\s+(?:A|AAAA)\s+(\S+)$/gm)].map((m) => m[1]!);
      return { addresses, out: r.out };
    },
    async stop() {
      await Promise.allSettled([dns!.stop(), ...[...edges.values()].map((e) => e.stop())]);
      await origin.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` every `everyMs` until it returns a value (not undefined) or `deadlineMs` passes; then undefined. */
export async function pollUntil<T>(check: () => Promise<T | undefined>, deadlineMs: number, everyMs = 50): Promise<{ value: T; ms: number } | undefined> {
  const start = performance.now();
  for (;;) {
    const value = await check();
    const ms = performance.now() - start;
    if (value !== undefined) return { value, ms };
    if (ms > deadlineMs) return undefined;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
