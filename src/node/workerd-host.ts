/**
 * Runs the edge on bare workerd (no Miniflare): bundles the edge and store workers, recovers the store directory
 * (scan.ts), writes the capnp config (workerd-config.ts) into `<store_dir>/.run/`, and starts `workerd serve` on a
 * listening socket this process opens and hands over (`--socket-fd`), so port 0 works and the port is known.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer, type AddressInfo, type Server } from "node:net";
import { join, resolve } from "node:path";
import { parseConfig } from "../config/config.ts";
import { scanStore } from "../store/scan.ts";
import { bundleWorker, ROOT } from "./bundle.ts";
import { wranglerCompat, type RunningEdge } from "./edge-host.ts";
import { workerdEdgeConfig } from "./workerd-config.ts";

export interface WorkerdEdgeOptions {
  /** cdn.toml text the worker receives; [edge] also gives the store and TLS settings. */
  configText: string;
  host?: string;
  port?: number;
  /** Overrides [edge] store_dir. */
  storeDir?: string;
  /** Where workerd's output goes (default: this process's stderr). */
  log?: (line: string) => void;
}

export interface RunningWorkerdEdge extends RunningEdge {
  proc: ChildProcess;
  storeDir: string;
  configPath: string;
  /** Entries the store started with, and files the recovery removed. */
  recovered: { entries: number; removed: number };
}

export function workerdBinary(): string {
  for (const p of ["node_modules/workerd/bin/workerd", "node_modules/@cloudflare/workerd-linux-64/bin/workerd"]) {
    const abs = resolve(ROOT, p);
    if (existsSync(abs)) return abs;
  }
  throw new Error("workerd binary not found under node_modules: run npm ci");
}

export async function startEdgeWorkerd(opts: WorkerdEdgeOptions): Promise<RunningWorkerdEdge> {
  const config = parseConfig(opts.configText);
  const edge = config.edge;
  if (!edge) throw new Error("cdn.toml has no [edge] table");
  if (!edge.tls_cert !== !edge.tls_key) throw new Error("[edge] tls_cert and tls_key go together");
  const storeDir = resolve(opts.storeDir ?? edge.store_dir);
  const runDir = join(storeDir, ".run");
  mkdirSync(runDir, { recursive: true });
  const pidFile = join(runDir, "workerd.pid");
  const holder = storeHolder(pidFile);
  if (holder) throw new Error(`store ${storeDir} is in use by workerd pid ${holder}: one edge process per store directory`);

  const [edgeJs, storeJs] = await Promise.all([
    bundleWorker("src/edge/worker.ts", "edge"),
    bundleWorker("src/store/worker.ts", "store"),
  ]);
  copyFileSync(edgeJs, join(runDir, "edge.js"));
  copyFileSync(storeJs, join(runDir, "store.js"));

  const inactiveSeconds = edge.store_inactive;
  const scan = scanStore(storeDir, { maxBytes: edge.store_max_bytes, inactiveSeconds });
  writeFileSync(join(runDir, "index.json"), JSON.stringify(scan.rows));

  const files: Parameters<typeof workerdEdgeConfig>[0]["files"] = { edge: "edge.js", store: "store.js", index: "index.json" };
  if (edge.tls_cert && edge.tls_key) {
    copyFileSync(resolve(edge.tls_cert), join(runDir, "tls.crt"));
    rmSync(join(runDir, "tls.key"), { force: true });
    writeFileSync(join(runDir, "tls.key"), readFileSync(resolve(edge.tls_key)), { mode: 0o600 });
    files.tlsCert = "tls.crt";
    files.tlsKey = "tls.key";
  }
  const configPath = join(runDir, "edge.capnp");
  writeFileSync(
    configPath,
    workerdEdgeConfig({
      ...wranglerCompat(),
      edge,
      configText: opts.configText,
      files,
      storeDir,
      store: { maxBytes: edge.store_max_bytes, inactiveSeconds },
    }),
  );

  const host = opts.host ?? "127.0.0.1";
  const listener = await listen(host, opts.port ?? 0);
  const port = (listener.address() as AddressInfo).port;
  const fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
  const proc = spawn(workerdBinary(), ["serve", configPath, "--socket-fd", "http=3"], {
    cwd: runDir,
    stdio: ["ignore", "pipe", "pipe", fd],
  });
  listener.close(); // workerd holds its own copy of the socket now
  writeFileSync(pidFile, String(proc.pid));
  proc.once("exit", () => {
    if (storeHolder(pidFile) === null) rmSync(pidFile, { force: true });
  });
  const log = opts.log ?? ((line: string) => process.stderr.write(line));
  proc.stdout!.on("data", (c: Buffer) => log(c.toString()));
  proc.stderr!.on("data", (c: Buffer) => log(c.toString()));

  const scheme = files.tlsCert ? "https" : "http";
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const probeHost = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : hostPart;
  const url = `${scheme}://${hostPart}:${port}`;
  await waitHealthy(`${scheme}://${probeHost}:${port}/.well-known/cdn/health`, proc);

  return {
    url,
    proc,
    storeDir,
    configPath,
    recovered: { entries: scan.rows.length, removed: scan.removed },
    stop: () => stopChild(proc),
  };
}

/** The pid of a live workerd that holds the store (its pid file names it), or null. */
function storeHolder(pidFile: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, "utf8").trim());
  } catch {
    return null;
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("workerd") ? pid : null;
  } catch {
    return null;
  }
}

function listen(host: string, port: number): Promise<Server> {
  return new Promise((resolveListen, reject) => {
    const server = createServer({ pauseOnConnect: true });
    server.once("error", reject);
    server.listen({ host, port, backlog: 1024 }, () => resolveListen(server));
  });
}

async function waitHealthy(url: string, proc: ChildProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  let exited = false;
  proc.once("exit", () => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`workerd exited (${proc.exitCode ?? proc.signalCode}) before it was ready`);
    if (await probe(url)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill("SIGKILL");
  throw new Error("workerd not healthy within 30 s");
}

function probe(url: string): Promise<boolean> {
  if (url.startsWith("http:")) {
    return fetch(url).then(
      async (r) => (await r.text(), r.ok),
      () => false,
    );
  }
  return new Promise((done) => {
    const req = httpsRequest(url, { rejectUnauthorized: false }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on("error", () => done(false));
    req.end();
  });
}

function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
    proc.once("exit", () => {
      clearTimeout(timer);
      done();
    });
    proc.kill("SIGTERM");
  });
}
