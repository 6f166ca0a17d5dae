/**
 * For the control-plane tests: real `nats-server` processes with JetStream on loopback (free ports, temp store
 * dirs): one server (open, or checking per-box keys), or a three-server JetStream cluster that is waited for until
 * it has a JetStream leader.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ControlSchema, type ControlConfig } from "../../src/config/control-schema.ts";
import { ControlClient } from "../../src/control/client.ts";
import { parseUsers } from "../../src/control/credentials.ts";
import { FleetKv } from "../../src/control/fleet-kv.ts";
import { connectOnce } from "../../src/control/nats.ts";
import { startNatsServer, type NatsServerOptions, type RunningNats } from "../../src/control/nats-server.ts";
import { ROOT } from "../../src/node/children.ts";
import { mirrorsLayout } from "../../src/redirector/shared-state.ts";
import { freePort } from "./ports.ts";


export interface TestNats {
  url: string;
  options: NatsServerOptions;
  server: RunningNats;
  /** Stops (SIGTERM) and starts it again on the same port and store: an outage and its end. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** One JetStream server in `dir` with the given authorization. */
export async function startTestNats(dir: string, auth: Pick<NatsServerOptions, "token" | "user" | "password" | "users" | "namespace" | "tls"> = {}): Promise<TestNats> {
  const options: NatsServerOptions = { dir, serverName: "solo", port: await freePort(), ...auth };
  const t: TestNats = {
    url: `nats://127.0.0.1:${options.port}`,
    options,
    server: await startNatsServer(options),
    stop: () => t.server.stop(),
    async start() {
      t.server = await startNatsServer(options);
    },
  };
  return t;
}

export interface KeyedNats extends TestNats {
  /** The URL clients name: `url`, or with `tls` its tls:// form. */
  clientUrl: string;
  /** What `fleet keys` printed. */
  keysOut: string;
  /** The seed file of `name`'s key. */
  keyOf(name: string): string;
  /** `[control]` as `name` (publishes given up soon), with `extra` fields. */
  controlAs(name: string, extra?: Record<string, unknown>): ControlConfig;
  /** startControlCdn's servers and keys: the operator's, and each edge's own; `extra` lines join every [control]. */
  cdnAuth(edges: string[], extra?: string): { servers: string[]; auth: string; authFor: Record<string, string> };
}

/**
 * Per-box credentials and one server that checks them: `fleet keys` writes a key per name into `<dir>/keys` (`keys`:
 * its arguments, `--box eu-lon`, `--dns ns1`, …) and nats-server runs with the authorization made from them (`tls`:
 * TLS only). The operator (a box's key may not) then makes the fleet's bucket, with `edges` the control streams, with
 * `mirrors` the redirectors' bucket (`operator`: more fields of its [control], e.g. the CA to trust).
 */
export async function startKeyedNats(
  dir: string,
  keys: string[],
  opts: { tls?: NatsServerOptions["tls"]; edges?: string[]; mirrors?: boolean; operator?: Record<string, unknown> } = {},
): Promise<KeyedNats> {
  const keysOut = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [join(ROOT, "scripts/fleet.ts"), "keys", "--dir", join(dir, "keys"), ...keys], { timeout: 30_000 }, (err, out, stderr) =>
      err ? reject(new Error(`fleet keys: ${err.message}\n${stderr}`)) : resolve(out),
    ),
  );
  const users = parseUsers(readFileSync(join(dir, "keys", "users.json"), "utf8"), "users.json");
  const nats = await startTestNats(join(dir, "nats"), { users, namespace: "parrot", tls: opts.tls });
  const keyOf = (name: string) => join(dir, "keys", `${name}.nk`);
  const clientUrl = opts.tls ? nats.url.replace("nats://", "tls://") : nats.url;
  const keyed: KeyedNats = Object.assign(nats, {
    clientUrl,
    keysOut,
    keyOf,
    controlAs: (name: string, extra: Record<string, unknown> = {}) =>
      ControlSchema.parse({ servers: [clientUrl], nkey: keyOf(name), publish_deadline_ms: 2000, publish_timeout_ms: 1000, ...extra }),
    cdnAuth(edges: string[], extra?: string) {
      const nkey = (name: string) => `nkey = "${keyOf(name)}"${extra ? `\n${extra}` : ""}`;
      return { servers: [clientUrl], auth: nkey("operator"), authFor: Object.fromEntries(edges.map((e) => [e, nkey(e)])) };
    },
  });
  try {
    const operator = keyed.controlAs("operator", opts.operator);
    const nc = await connectOnce(operator, "test operator");
    try {
      if (opts.edges) await ControlClient.open(nc, operator, opts.edges);
      await FleetKv.open(nc, operator);
      if (opts.mirrors) await FleetKv.open(nc, operator, undefined, mirrorsLayout("parrot"));
    } finally {
      await nc.close();
    }
  } catch (err) {
    await nats.stop();
    throw err;
  }
  return keyed;
}

export interface TestCluster {
  urls: string[];
  servers: RunningNats[];
  options: NatsServerOptions[];
  /** Starts server i again (same ports and store). */
  restart(i: number): Promise<void>;
  /** Waits until server i says JetStream is healthy (it has joined the cluster and has a meta leader). */
  healthy(i: number, deadlineMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Three JetStream servers routed to each other, under `dir`; resolves once every one is healthy. */
export async function startTestCluster(dir: string, auth: Pick<NatsServerOptions, "token" | "user" | "password"> = {}): Promise<TestCluster> {
  const ports = await Promise.all([0, 1, 2].map(async () => ({ client: await freePort(), route: await freePort(), http: await freePort() })));
  const routes = ports.map((p) => `nats-route://127.0.0.1:${p.route}`);
  const options: NatsServerOptions[] = ports.map((p, i) => ({
    dir: join(dir, `n${i + 1}`),
    serverName: `n${i + 1}`,
    port: p.client,
    httpPort: p.http,
    cluster: { name: "parrot-test", port: p.route, routes },
    ...auth,
  }));
  const servers = await Promise.all(options.map((o) => startNatsServer(o)));
  const cluster: TestCluster = {
    urls: options.map((o) => `nats://127.0.0.1:${o.port}`),
    servers,
    options,
    async restart(i) {
      servers[i] = await startNatsServer(options[i]!);
    },
    async healthy(i, deadlineMs = 30_000) {
      const deadline = Date.now() + deadlineMs;
      let last = "";
      while (Date.now() < deadline) {
        try {
          const res = await fetch(`http://127.0.0.1:${options[i]!.httpPort}/healthz`);
          last = await res.text();
          if (res.ok) return;
        } catch (err) {
          last = (err as Error).message;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`nats server n${i + 1} not healthy within ${deadlineMs} ms: ${last}`);
    },
    async stop() {
      await Promise.allSettled(servers.map((s) => s.stop()));
    },
  };
  try {
    for (let i = 0; i < 3; i++) await cluster.healthy(i);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
