/**
 * For the control-plane tests: real `nats-server` processes with JetStream on loopback (free ports, temp store
 * dirs): one server, or a three-server JetStream cluster that is waited for until it has a JetStream leader.
 */
import { join } from "node:path";
import { startNatsServer, type NatsServerOptions, type RunningNats } from "../../src/control/nats-server.ts";
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
