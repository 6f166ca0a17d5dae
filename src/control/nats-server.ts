/**
 * Running Debian's `nats-server` with JetStream: `npm start` starts one on loopback when it is installed, the tests
 * start single servers and three-server clusters. The config file is generated (pure: `natsServerConfig`), so the
 * docs/control-plane.md's production example and the tests' clusters come from the same code.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { nkeyAuthorization, type NkeyUser } from "./credentials.ts";

export interface NatsServerOptions {
  /** Folder for the config file and the JetStream store (`<dir>/jetstream`). */
  dir: string;
  serverName: string;
  host?: string;
  /** Client port (0: a free one, chosen by the server). */
  port: number;
  /** Monitoring port (`/healthz`); omitted = none. */
  httpPort?: number;
  /** Client authorization: per-box nkeys with subject permissions (credentials.ts) under `namespace`, a token, or user + password. */
  users?: NkeyUser[];
  namespace?: string;
  /** Client authorization: a token, or user + password. */
  token?: string;
  user?: string;
  password?: string;
  /** A JetStream cluster: its name, this server's route port and every server's route URL (`nats-route://h:p`). */
  cluster?: { name: string; port: number; routes: string[] };
  /** TLS for clients and routes (PEM files); with `ca`, routes must present a certificate it signed. */
  tls?: { cert: string; key: string; ca?: string };
}

export interface RunningNats {
  url: string;
  proc: ChildProcess;
  /** What the server printed (the last 64 KB). */
  output(): string;
  /** Stops cleanly (SIGTERM, SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** Kills at once (SIGKILL): a crash. */
  kill(): Promise<void>;
}

/** The nats-server config text for `opts` (JetStream on, stored under `<dir>/jetstream`). */
export function natsServerConfig(opts: NatsServerOptions): string {
  const q = JSON.stringify;
  const host = opts.host ?? "127.0.0.1";
  const lines = [
    `server_name: ${q(opts.serverName)}`,
    `listen: ${q(`${host}:${opts.port || -1}`)}`,
    ...(opts.httpPort !== undefined ? [`http: ${q(`${host}:${opts.httpPort}`)}`] : []),
    `jetstream {`,
    `  store_dir: ${q(join(opts.dir, "jetstream"))}`,
    `  max_memory_store: 64MB`,
    `  max_file_store: 4GB`,
    `}`,
  ];
  const tls = (indent: string, verify: boolean) =>
    opts.tls
      ? [
          `${indent}tls {`,
          `${indent}  cert_file: ${q(opts.tls.cert)}`,
          `${indent}  key_file: ${q(opts.tls.key)}`,
          ...(opts.tls.ca ? [`${indent}  ca_file: ${q(opts.tls.ca)}`] : []),
          ...(verify && opts.tls.ca ? [`${indent}  verify: true`] : []),
          `${indent}}`,
        ]
      : [];
  lines.push(...tls("", false));
  if (opts.users) lines.push(...nkeyAuthorization(opts.users, opts.namespace ?? "parrot"));
  else if (opts.token) lines.push(`authorization {`, `  token: ${q(opts.token)}`, `}`);
  else if (opts.user) lines.push(`authorization {`, `  user: ${q(opts.user)}`, `  password: ${q(opts.password ?? "")}`, `}`);
  if (opts.cluster) {
    lines.push(
      `cluster {`,
      `  name: ${q(opts.cluster.name)}`,
      `  listen: ${q(`${host}:${opts.cluster.port}`)}`,
      `  routes: [${opts.cluster.routes.map((r) => q(r)).join(", ")}]`,
      ...tls("  ", true),
      `}`,
    );
  }
  return lines.join("\n") + "\n";
}

/** Whether `nats-server` is on the PATH. */
export function natsServerInstalled(): boolean {
  return spawnSync("nats-server", ["--version"], { stdio: "ignore" }).status === 0;
}

/** Starts nats-server and resolves when it accepts clients (`Server is ready`), within 20 s. */
export function startNatsServer(opts: NatsServerOptions): Promise<RunningNats> {
  mkdirSync(opts.dir, { recursive: true });
  const configPath = join(opts.dir, "nats.conf");
  writeFileSync(configPath, natsServerConfig(opts), { mode: 0o600 });
  const proc = spawn("nats-server", ["-c", configPath], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (c: Buffer) => {
    out = (out + c.toString()).slice(-65_536);
  };
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const ended = new Promise<void>((r) => proc.once("exit", () => r()));
  const signal = (s: NodeJS.Signals) => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(s);
  };
  const running: RunningNats = {
    url: `nats://${opts.host ?? "127.0.0.1"}:${opts.port}`,
    proc,
    output: () => out,
    async stop() {
      signal("SIGTERM");
      const timer = setTimeout(() => signal("SIGKILL"), 5_000);
      await ended;
      clearTimeout(timer);
    },
    async kill() {
      signal("SIGKILL");
      await ended;
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`nats-server not ready within 20 s:\n${out}`)), 20_000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      signal("SIGKILL");
      reject(err);
    };
    const check = () => {
      if (out.includes("Server is ready")) {
        clearTimeout(timer);
        const port = /Listening for client connections on \S+:(\d+)/.exec(out)?.[1];
        if (!opts.port && port) running.url = `nats://${opts.host ?? "127.0.0.1"}:${port}`;
        proc.stderr!.off("data", check);
        resolve(running);
      }
    };
    proc.stderr!.on("data", check);
    proc.once("error", (err) => fail(new Error(`cannot start nats-server (apt-get install nats-server): ${err.message}`)));
    proc.once("exit", (code) => fail(new Error(`nats-server exited (${code}) before it was ready:\n${out}`)));
  });
}

/**
 * `npm start`'s control plane: one JetStream server on loopback (a free port, a token for this run, its store in
 * `dir`), or undefined when nats-server is not installed (then purges fan out directly).
 */
export async function startLocalNats(dir: string): Promise<{ server: RunningNats; control: { servers: string[]; token: string } } | undefined> {
  if (!natsServerInstalled()) return undefined;
  const token = randomBytes(18).toString("base64url");
  const server = await startNatsServer({ dir, serverName: "parrot-start", port: 0, token });
  return { server, control: { servers: [server.url], token } };
}
