/**
 * Runs an edge box on bare workerd (no Miniflare): recovers the store directory (scan.ts), writes the run directory
 * `<store_dir>/.run/` (bundles, capnp configs from workerd-config.ts, GeoIP and TLS files), opens the listening
 * socket(s) here, and keeps the workerd processes running (process.ts).
 *
 * processes = 1: one workerd holds the edge and the store, under a shell loop that holds the listening socket and
 *   starts it again (after recovering the store directory) when it dies.
 * processes = N > 1: one store workerd on a unix socket in the run directory (mode 0700), kept running by this
 *   process (recovered, then started again, when it dies: meanwhile the edges answer from their memory tiers and go
 *   to the origin for the rest), and N edge workerds, each on its own SO_REUSEPORT listening socket, so the kernel
 *   spreads connections over them, each under its shell loop.
 */
import { hostPrivacyKey } from "./privacy-key.ts";
import type { ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { EdgeConfig } from "../config/edge-schema.ts";
import { FUNCTION_SLOTS_FILE } from "../contracts/functions.ts";
import { STATS_PATH } from "../contracts/store.ts";
import { HEALTH_PATH } from "../contracts/well-known.ts";
import { scanStore } from "../store/scan.ts";
import { bundleWorker, ROOT } from "./bundle.ts";
import { configFromText, configPath, type ConfigFile } from "./config-file.ts";
import { wranglerCompat, type RunningEdge } from "./edge-host.ts";
import { exited, keepRunning, shellLoop, stopProcess, type Kept } from "./process.ts";
import { openEngineSocket, prepareFunctions, slotSocket, startFunctions, type PreparedFunctions, type RunningFunctions } from "./functions-host.ts";
import { workerdEdgeConfig, workerdStoreConfig, type GeoBinding, type WorkerdEdgeConfigInput } from "./workerd-config.ts";

export interface WorkerdEdgeOptions {
  /** cdn.toml text the worker receives; [edge] also gives the store and TLS settings. */
  configText: string;
  /** The folder the config's relative paths start from (the config file's folder; default: the working directory). */
  configDir?: string;
  host?: string;
  port?: number;
  /** Overrides [edge] store_dir. */
  storeDir?: string;
  /** Where workerd's output goes (default: this process's stderr). */
  log?: (line: string) => void;
  /** Overrides [edge] processes. */
  processes?: number;
  /** With [control]: where the box's control agent listens (unix socket) and this box start's id. */
  control?: { socketPath: string; bootId: string };
  /** Behind the front door: the scheme comes from this header (see src/frontdoor/frontdoor.ts). */
  forwardedProtoHeader?: string;
}

export interface RunningWorkerdEdge extends RunningEdge {
  storeDir: string;
  /** The workerd that holds the store (with processes = 1, the only one). */
  storePid(): number;
  /** The edge workerds' current pids (with processes = 1, the store's). */
  edgePids(): number[];
  /** Entries the store started with, and files the recovery removed. */
  recovered: { entries: number; removed: number };
  /**
   * Applies a new cdn.toml to the running edge workers (within a second, no restart, no connection dropped). The
   * text must be valid (the caller validated it); what needs a restart is the caller's to say.
   */
  reload(configText: string): void;
  /** `[[functions]]`: rebuilds the functions' files from a new config and restarts those that changed. */
  reloadFunctions(configText: string): Promise<string[]>;
  /** The site functions' processes (empty without `[[functions]]`). */
  functions: RunningFunctions | undefined;
}

export function workerdBinary(): string {
  for (const p of ["node_modules/workerd/bin/workerd", "node_modules/@cloudflare/workerd-linux-64/bin/workerd"]) {
    const abs = resolve(ROOT, p);
    if (existsSync(abs)) return abs;
  }
  throw new Error("workerd binary not found under node_modules: run npm ci");
}

/** What a run needs on disk, written before any process starts. */
interface RunDir {
  edge: EdgeConfig;
  storeDir: string;
  runDir: string;
  processes: number;
  edgeConfig: string;
  storeConfig?: string;
  /** processes > 1: the store's unix socket. */
  storeSocket?: string;
  scheme: "http" | "https";
  recovered: { entries: number; removed: number };
  functions?: PreparedFunctions;
}

export async function startEdgeWorkerd(opts: WorkerdEdgeOptions): Promise<RunningWorkerdEdge> {
  const file = configFromText(opts.configText, opts.configDir ?? process.cwd());
  hostPrivacyKey(); // in the environment every workerd of this box inherits (PRIVACY_KEY)
  const run = await prepareRunDir(file, opts);
  const log = opts.log ?? ((line: string) => process.stderr.write(line));
  const host = opts.host ?? "127.0.0.1";
  const listeners = await openListeners(host, opts.port ?? 0, run.processes);
  const port = (listeners[0]!.address() as AddressInfo).port;
  const fdOf = (s: Server) => (s as unknown as { _handle: { fd: number } })._handle.fd;
  const pidFile = (i: number) => join(run.runDir, `edge-${i}.pid`);
  const recover = [process.execPath, resolve(ROOT, "scripts/store-recover.ts"), run.runDir];

  let store: Kept | undefined;
  const loops: ChildProcess[] = [];
  // [[functions]]: their processes, and the edge's socket for their fetch() (fd 4 of every edge process).
  const engineSocket = run.functions ? await openEngineSocket(run.functions.engineSocket) : undefined;
  const functions = run.functions ? startFunctions(run.functions, run.runDir, wranglerCompat(), log, join(run.runDir, "config", FUNCTION_SLOTS_FILE)) : undefined;
  const stopAll = async () => {
    await Promise.all(loops.map((l) => stopProcess(l, { group: true })));
    await functions?.stop();
    if (run.functions) rmSync(run.functions.engineSocket, { force: true });
    await store?.stop();
    rmSync(join(run.runDir, "workerd.pid"), { force: true });
    if (run.storeSocket) rmSync(run.storeSocket, { force: true });
  };
  try {
    if (run.storeConfig) {
      store = keepRunning(
        { command: workerdBinary(), args: ["serve", run.storeConfig], cwd: run.runDir, log },
        {
          before: async () => {
            rmSync(run.storeSocket!, { force: true }); // workerd does not bind over a stale socket file
            await recoverStore(run.runDir);
          },
          onRestart: (proc) => writeFileSync(join(run.runDir, "workerd.pid"), String(proc.pid)),
        },
      );
      writeFileSync(join(run.runDir, "workerd.pid"), String(store.current.pid));
      await waitStore(run.storeSocket!, store.current);
    }
    listeners.forEach((listener, i) => {
      rmSync(pidFile(i), { force: true });
      loops.push(
        shellLoop({
          command: workerdBinary(),
          args: ["serve", run.edgeConfig, "--socket-fd", "http=3", ...(engineSocket ? ["--socket-fd", "functions=4"] : [])],
          cwd: run.runDir,
          log,
          pidFile: pidFile(i),
          socketFd: fdOf(listener),
          moreFds: engineSocket ? [fdOf(engineSocket)] : undefined,
          // One process holds the store too: the directory is recovered before it starts again.
          beforeRestart: run.storeConfig ? undefined : recover,
        }),
      );
    });
  } finally {
    for (const l of listeners) l.close(); // the shell loops hold their own copies of the sockets now
    engineSocket?.close();
  }

  const pids = () =>
    listeners.map((_, i) => {
      try {
        return Number(readFileSync(pidFile(i), "utf8").trim());
      } catch {
        return 0;
      }
    });
  const edgePids = () => pids().filter((p) => p > 0);
  if (!store) {
    // The store's holder is the single workerd: its pid file is what a second box on this directory checks.
    const holder = setInterval(() => {
      const [pid] = edgePids();
      if (pid) writeFileSync(join(run.runDir, "workerd.pid"), String(pid));
    }, 1_000).unref();
    loops[0]!.once("exit", () => clearInterval(holder));
  }
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const probeHost = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : hostPart;
  try {
    await waitHealthy(`${run.scheme}://${probeHost}:${port}${HEALTH_PATH}`, loops);
    for (let i = 0; i < 600 && edgePids().length < loops.length; i++) await sleep(50);
    if (!store) writeFileSync(join(run.runDir, "workerd.pid"), String(edgePids()[0]));
    if (run.functions) {
      for (const id of await functions!.ready()) log(`function ${id}: its workerd is not answering yet (its site gets its on_error meanwhile)\n`);
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  return {
    url: `${run.scheme}://${hostPart}:${port}`,
    storeDir: run.storeDir,
    storePid: () => (store ? store.current.pid! : edgePids()[0]!),
    edgePids,
    recovered: run.recovered,
    reload: (configText) => writeConfigText(join(run.runDir, "config"), configText),
    reloadFunctions: async (configText) => (functions ? functions.reload(configFromText(configText, file.dir)) : []),
    functions,
    stop: stopAll,
  };
}

/** Replaces the cdn.toml the edge workers follow, in one step (written aside, renamed). */
function writeConfigText(configDir: string, text: string) {
  const aside = join(configDir, `.cdn.toml.${process.pid}.tmp`);
  writeFileSync(aside, text, { mode: 0o600 });
  renameSync(aside, join(configDir, "cdn.toml"));
}

/** Recovers the store directory of a run (scan.ts) and writes the index the store worker starts with. */
export async function recoverStore(runDir: string): Promise<{ entries: number; removed: number }> {
  const { storeDir, maxBytes, maxEntries, inactiveSeconds } = JSON.parse(readFileSync(join(runDir, "store.json"), "utf8")) as {
    storeDir: string;
    maxBytes: number;
    maxEntries?: number;
    inactiveSeconds: number;
  };
  const scan = await scanStore(storeDir, { maxBytes, maxEntries, inactiveSeconds });
  writeFileSync(join(runDir, "index.json"), JSON.stringify(scan.rows));
  return { entries: scan.rows.length, removed: scan.removed };
}

/** Bundles, recovered index, copied files and capnp configs in `<store_dir>/.run/`. */
async function prepareRunDir(file: ConfigFile, opts: WorkerdEdgeOptions): Promise<RunDir> {
  const edge = file.config.edge;
  if (!edge) throw new Error(`${file.path} has no [edge] table`);
  if (!edge.tls_cert !== !edge.tls_key) throw new Error("[edge] tls_cert and tls_key go together");
  const processes = opts.processes ?? edge.processes;
  if (!Number.isInteger(processes) || processes < 1) throw new Error(`processes must be a whole number >= 1, not ${processes}`);
  const storeDir = opts.storeDir ? resolve(opts.storeDir) : configPath(file, edge.store_dir);
  const runDir = join(storeDir, ".run");
  mkdirSync(runDir, { recursive: true });
  const holder = storeHolder(join(runDir, "workerd.pid"));
  if (holder) throw new Error(`store ${storeDir} is in use by workerd pid ${holder}: one edge box per store directory`);

  const [edgeJs, storeJs] = await Promise.all([bundleWorker("src/edge/worker.ts", "edge"), bundleWorker("src/store/worker.ts", "store")]);
  copyFileSync(edgeJs, join(runDir, "edge.js"));
  copyFileSync(storeJs, join(runDir, "store.js"));
  const store = {
    maxBytes: edge.store_max_bytes,
    maxEntries: edge.store_max_entries,
    inactiveSeconds: edge.store_inactive,
    recheckSeconds: edge.store_recheck_seconds,
  };
  writeFileSync(join(runDir, "store.json"), JSON.stringify({ storeDir, ...store }));
  const recovered = await recoverStore(runDir);

  const files: WorkerdEdgeConfigInput["files"] = { edge: "edge.js", store: "store.js", index: "index.json" };
  // GeoIP for the trace: only files [geoip] names (the embedded default is too big to load into every edge).
  const geoip: Partial<Record<GeoBinding, string>> = {};
  const geo = file.config.geoip;
  for (const [binding, path] of [
    ["GEOIP_CITY", geo.city],
    ["GEOIP_CITY_V6", geo.city_v6],
    ["GEOIP_ASN", geo.asn],
    ["GEOIP_ASN_V6", geo.asn_v6],
  ] as [GeoBinding, string | undefined][]) {
    if (!path) continue;
    const name = `${binding.toLowerCase()}.bin`;
    copyFileSync(configPath(file, path), join(runDir, name));
    geoip[binding] = name;
  }
  if (edge.tls_cert && edge.tls_key) {
    copyFileSync(configPath(file, edge.tls_cert), join(runDir, "tls.crt"));
    rmSync(join(runDir, "tls.key"), { force: true });
    writeFileSync(join(runDir, "tls.key"), readFileSync(configPath(file, edge.tls_key)), { mode: 0o600 });
    files.tlsCert = "tls.crt";
    files.tlsKey = "tls.key";
  }
  const compat = wranglerCompat();
  let storeAddress: string | undefined;
  let storeSocket: string | undefined;
  let storeConfig: string | undefined;
  if (processes > 1) {
    // A unix socket only this user reaches; a long store path (sun_path holds 108 bytes) gets one under tmpdir.
    storeSocket = join(runDir, "store.sock");
    if (storeSocket.length > 100) storeSocket = join(mkdtempSync(join(tmpdir(), "parrot-store-")), "store.sock");
    rmSync(storeSocket, { force: true });
    chmodSync(runDir, 0o700);
    storeAddress = `unix:${storeSocket}`;
    storeConfig = join(runDir, "store.capnp");
    writeFileSync(storeConfig, workerdStoreConfig({ ...compat, files, store, storeDir, address: storeAddress }));
  }
  // [[functions]]: each site's function bundled (or its deployed version) with its process's config.
  const prepared = file.config.functions.length ? await prepareFunctions(file, runDir, compat, opts.log ?? ((line) => process.stderr.write(line))) : undefined;
  // None could be prepared: no function processes, no socket for them (the sites get their on_error).
  const functions = prepared?.functions.length ? prepared : undefined;
  const edgeConfig = join(runDir, "edge.capnp");
  const control = opts.control && { address: `unix:${opts.control.socketPath}`, bootId: opts.control.bootId };
  const configDir = join(runDir, "config");
  mkdirSync(configDir, { recursive: true });
  writeConfigText(configDir, file.text);
  writeFileSync(
    edgeConfig,
    workerdEdgeConfig({
      ...compat,
      edge,
      configText: file.text,
      configDir,
      files,
      storeDir,
      store,
      storeAddress,
      geoip,
      control,
      forwardedProtoHeader: opts.forwardedProtoHeader,
      functionSlots: functions ? Array.from({ length: functions.slots }, (_, k) => `unix:${slotSocket(functions.socketDir, k)}`) : undefined,
      functionKey: functions?.key,
      functionHost: functions && `unix:${functions.hostSocket}`,
    }),
  );
  return { edge, storeDir, runDir, processes, edgeConfig, storeConfig, storeSocket, scheme: files.tlsCert ? "https" : "http", recovered, functions };
}

/** `n` listening sockets on one port: SO_REUSEPORT, so the kernel spreads connections over the processes. */
async function openListeners(host: string, port: number, n: number): Promise<Server[]> {
  const listeners: Server[] = [];
  try {
    for (let i = 0; i < n; i++) listeners.push(await listen(host, i === 0 ? port : (listeners[0]!.address() as AddressInfo).port));
  } catch (err) {
    for (const l of listeners) l.close();
    throw err;
  }
  return listeners;
}

function listen(host: string, port: number): Promise<Server> {
  return new Promise((resolveListen, reject) => {
    const server = createServer({ pauseOnConnect: true });
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(err.code === "EADDRINUSE" ? new Error(`${host}:${port} is in use by another program: stop it or choose another --port`) : err),
    );
    server.listen({ host, port, backlog: 1024, reusePort: true }, () => resolveListen(server));
  });
}

/** Waits until the store process answers on its unix socket. */
async function waitStore(socketPath: string, proc: ChildProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (exited(proc)) throw new Error(`the store workerd exited (${proc.exitCode ?? proc.signalCode}) before it was ready`);
    const ok = await new Promise<boolean>((done) => {
      const req = httpRequest({ socketPath, path: STATS_PATH, method: "POST", host: "store" }, (res) => {
        res.resume();
        done(res.statusCode === 200);
      });
      req.on("error", () => done(false));
      req.end();
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error("the store workerd not ready within 30 s");
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

async function waitHealthy(url: string, loops: ChildProcess[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const dead = loops.find(exited);
    if (dead) throw new Error(`workerd's loop exited (${dead.exitCode ?? dead.signalCode}) before it was ready`);
    if (await probe(url)) return;
    await sleep(50);
  }
  throw new Error("workerd not healthy within 30 s");
}

function probe(url: string): Promise<boolean> {
  return new Promise((done) => {
    const req = (url.startsWith("https:") ? httpsRequest : httpRequest)(url, { rejectUnauthorized: false }, (res) => {
      res.resume();
      done(res.statusCode === 200 || res.statusCode === 503); // 503: up, and draining (it still serves)
    });
    req.on("error", () => done(false));
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
