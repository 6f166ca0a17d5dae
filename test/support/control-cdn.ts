/**
 * For the control-plane e2e tests: a CDN of real processes on loopback with `[control]` — a scripted origin, edge
 * boxes (`node scripts/edge.ts`, bare workerd, each with its own store and control agent) on 127.0.0.2, .3, … with
 * one port number, optionally the DNS node, all configured for the given NATS servers. Each edge gets its own
 * cdn.toml so one can reach NATS another way (through a proxy the test cuts).
 */
import { execFile } from "node:child_process";
import { Agent, request as httpRequest } from "node:http";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ROOT, startNodeScript, type Running } from "../../src/node/children.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { ScriptedOrigin } from "./scripted-origin.ts";
import { portFreeOn } from "./ports.ts";

export const TOKEN = "control-admin-token-0123456789";
export const NATS_USER = { user: "parrot", password: "control-nats-password-0123" };

export interface ControlCdnOptions {
  /** Edge names; edge i listens on 127.0.0.(i + 2). */
  edges: string[];
  /** NATS server URLs every edge uses, unless `serversFor` names others for it. */
  servers: string[];
  serversFor?: Record<string, string[]>;
  /** The `[control]` credential lines of the common config (default: NATS_USER's user and password), and per edge. */
  auth?: string;
  authFor?: Record<string, string>;
  /** More `[control]` lines (replicas, report_ms, catch_up_timeout_ms, …). */
  control?: string;
  /** Start the DNS node too (probing every edge every 250 ms). */
  dns?: boolean;
  /** More `[edge]` lines, given each edge's base URL by name (e.g. `shields`). */
  edge?: (urlOf: (name: string) => string) => string;
  /** More `[geoip]` lines (e.g. `fleet = true`). */
  geoip?: string;
  /** More tables after the common ones (e.g. `[[functions]]`, with absolute module paths). */
  tables?: string;
  /** Each edge's cdn.toml in a folder of its own (`<dir>/<name>/`): what it keeps beside it (deployed function versions) is its own. */
  ownDirs?: boolean;
  /** The boxes run a front door (`tables` has `[[sites]]`): its HTTPS listener on this second port, one number for every box. */
  https?: boolean;
}

export interface ControlCdn {
  dir: string;
  origin: ScriptedOrigin;
  served: Served;
  port: number;
  /** The front door's HTTPS port on every box (with `https`). */
  httpsPort?: number;
  /** The box's loopback address (127.0.0.2, .3, …). */
  host(name: string): string;
  /** The config every tool outside an edge box uses (the CLI, the DNS node). */
  config: string;
  edgeUrl(name: string): string;
  url(name: string, path: string): string;
  startEdge(name: string): Promise<Running>;
  stopEdge(name: string): Promise<void>;
  running(name: string): Running | undefined;
  /** X-Cache-Status and body of a GET (or another method) at an edge, for `Host: www.example.org` (every edge's key). */
  get(name: string, path: string, init?: { method?: string; headers?: Record<string, string> }): Promise<Answer>;
  /** A purge through an edge's operator endpoint. */
  purge(via: string, body: object): Promise<{ status: number; json: PurgeAnswer }>;
  /** `npm run purge` with the common config; its exit status and output. */
  cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** `npm run fleet -- ARGS --config <the common config>`; its exit status and output. */
  fleet(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** `npm run fn -- ARGS --config <the common config>`; its exit status and output. */
  fn(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  dns?: { dnsPort: number; dig(...args: string[]): Promise<string[]>; statusJson(): Promise<{ edges: Record<string, unknown>[] }> };
  stop(): Promise<void>;
}

export interface Answer {
  status: number;
  xcs: string | undefined;
  body: string;
}

/** The site every test request names: the same cache key at every edge. */
export const SITE = "www.example.org";

/** One request over node:http (fetch cannot set Host) with a keep-alive agent. */
const agent = new Agent({ keepAlive: true, maxSockets: 32 });
export function request(address: string, port: number, path: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: address, port, path, method: init.method ?? "GET", agent, headers: { host: SITE, ...init.headers }, timeout: 30_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode!, xcs: res.headers["x-cache-status"] as string | undefined, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${path}: no answer within 30 s`)));
    req.on("error", reject);
    req.end();
  });
}

export interface PurgeAnswer {
  stored?: boolean;
  seq?: number;
  applied?: string[];
  pending?: { edge: string; detail: string }[];
  error?: string;
  retries?: number;
  retried?: string;
}

/** A command to its end (at most 90 s): its exit status and output. */
function runScript(script: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, script), ...args], { timeout: 90_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const hostOf = (i: number) => `127.0.0.${i + 2}`;


export async function startControlCdn(opts: ControlCdnOptions): Promise<ControlCdn> {
  const dir = mkdtempSync(join(tmpdir(), "parrot-control-"));
  const origin = new ScriptedOrigin();
  const served = await serveFetch(origin.handle);
  const port = await portFreeOn(opts.edges.map((_, i) => hostOf(i)));
  let httpsPort: number | undefined;
  while (opts.https && (httpsPort === undefined || httpsPort === port)) httpsPort = await portFreeOn(opts.edges.map((_, i) => hostOf(i)));
  const index = (name: string) => {
    const i = opts.edges.indexOf(name);
    if (i < 0) throw new Error(`no edge ${name}`);
    return i;
  };
  const edgesToml = opts.edges
    .map((name, i) => `\n[[edges]]\nname = "${name}"\nurl = "http://${hostOf(i)}:${port}"\nipv4 = "${hostOf(i)}"\nlat = ${10 * i}\nlon = ${10 * i}\n`)
    .join("");
  const defaultAuth = opts.auth ?? `user = "${NATS_USER.user}"\npassword = "${NATS_USER.password}"`;
  const toml = (servers: string[], auth = defaultAuth) => `[edge]
origin = "${served.url}"
access_log = false
${opts.edge?.((name) => `http://${hostOf(index(name))}:${port}`) ?? ""}

[admin]
token = "${TOKEN}"

[control]
servers = ${JSON.stringify(servers)}
${auth}
report_ms = 3000
${opts.control ?? ""}

[geoip]
city = "${join(ROOT, "test/fixtures/GeoIP2-City-Test.mmdb")}"
${opts.geoip ?? ""}

[dns]
zone = "geo.example.org"
ttl = 5
nameservers = ["ns1.example.org"]
hostmaster = "hostmaster.example.org"

[dns.director]
answers = ${opts.edges.length}

[dns.health]
interval_ms = 250
timeout_ms = 200
down_after = 2
up_after = 2
${edgesToml}
${opts.tables ?? ""}`;
  const config = join(dir, "cdn.toml");
  writeFileSync(config, toml(opts.servers));
  const configOf = (name: string) => {
    const servers = opts.serversFor?.[name];
    const auth = opts.authFor?.[name];
    if (!servers && !auth && !opts.ownDirs) return config;
    const path = opts.ownDirs ? join(dir, name, "cdn.toml") : join(dir, `cdn-${name}.toml`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, toml(servers ?? opts.servers, auth));
    return path;
  };
  const edges = new Map<string, Running>();
  const startEdge = async (name: string) => {
    const i = index(name);
    const running = await startNodeScript(
      "scripts/edge.ts",
      ["--config", configOf(name), "--name", name, "--host", hostOf(i), "--port", String(port), "--store", join(dir, "store", name), ...(httpsPort ? ["--https-port", String(httpsPort)] : [])],
      /edge ready: (\S+)/,
      90_000,
    );
    edges.set(name, running);
    return running;
  };
  const stopEdge = async (name: string) => {
    await edges.get(name)?.stop();
    edges.delete(name);
  };
  const url = (name: string, path: string) => `http://${hostOf(index(name))}:${port}${path}`;
  let dnsNode: Running | undefined;
  const cdn: ControlCdn = {
    dir,
    origin,
    served,
    port,
    httpsPort,
    host: (name) => hostOf(index(name)),
    config,
    edgeUrl: (name) => `http://${hostOf(index(name))}:${port}`,
    url,
    startEdge,
    stopEdge,
    running: (name) => edges.get(name),
    get: (name, path, init) => request(hostOf(index(name)), port, path, init),
    async purge(via, body) {
      const res = await fetch(url(via, "/.well-known/cdn/purge"), {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as PurgeAnswer };
    },
    cli: (args) => runScript("scripts/purge.ts", ["--config", config, ...args]),
    fleet: (args) => runScript("scripts/fleet.ts", [...args, "--config", config]),
    fn: (args) => runScript("scripts/fn.ts", [...args, "--config", config]),
    async stop() {
      await Promise.allSettled([...[...edges.keys()].map(stopEdge), dnsNode?.stop()]);
      await served.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all(opts.edges.map(startEdge));
    if (opts.dns) {
      dnsNode = await startNodeScript("scripts/dns.ts", ["--config", config, "--port", "0", "--dns-port", "0"], /^dns udp\+tcp 127\.0\.0\.1:(\d+)/m);
      const dnsPort = Number(dnsNode.match[1]);
      const node = dnsNode;
      cdn.dns = {
        dnsPort,
        // Its operator page on the HTTP port it printed (after the UDP line startNodeScript waited for).
        statusJson: async () => {
          const port = /^dns http 127\.0\.0\.1:(\d+)/m.exec(node.output())?.[1];
          if (!port) throw new Error(`the DNS node has not printed its HTTP port: ${node.output()}`);
          return (await (await fetch(`http://127.0.0.1:${port}/status.json`)).json()) as { edges: Record<string, unknown>[] };
        },
        dig: (...args) =>
          new Promise((resolve, reject) =>
            execFile("dig", ["@127.0.0.1", "-p", String(dnsPort), "+time=2", "+tries=1", "+short", ...args], { timeout: 10_000 }, (err, out) =>
              err ? reject(err) : resolve(out.split("\n").filter(Boolean)),
            ),
          ),
      };
    }
  } catch (err) {
    await cdn.stop();
    throw err;
  }
  return cdn;
}

/**
 * Polls `check` every 100 ms until it returns a value (not undefined), at most `deadlineMs`; then throws, with what
 * `explain` says (say, a box's log) so a failure in CI can be understood from its output alone.
 */
export async function until<T>(what: string, check: () => Promise<T | undefined>, deadlineMs = 20_000, explain?: () => string): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${deadlineMs} ms${explain ? `\n${explain()}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
