/**
 * Runs the edge on bare workerd (no Miniflare): bundles the edge and store workers, recovers the store directory
 * (scan.ts), writes the capnp config (workerd-config.ts) into `<store_dir>/.run/`, and starts `workerd serve` on a
 * listening socket this process opens and hands over (`--socket-fd`), so port 0 works and the port is known.
 *
 * processes = 1: one workerd holds the edge and the store. processes = N > 1: one store workerd listening on a unix
 * socket in the run directory (mode 0700) and N edge workerds sharing the listening socket, their Cache API and
 * STORE binding pointed at it. Each edge workerd runs under a small `sh` loop that holds a copy of the listening
 * socket and starts it again when it dies (kill -9 included); the others keep accepting meanwhile. The store process
 * is not restarted here (its index must be rebuilt from the directory): when it dies the box stops, for systemd.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { createServer, type AddressInfo, type Server } from "node:net";
import { join, resolve } from "node:path";
import { parseConfig } from "../config/config.ts";
import { scanStore } from "../store/scan.ts";
import { bundleWorker, ROOT } from "./bundle.ts";
import { wranglerCompat, type RunningEdge } from "./edge-host.ts";
import { workerdEdgeConfig, workerdStoreConfig, type GeoBinding } from "./workerd-config.ts";

export interface WorkerdEdgeOptions {
  /** cdn.toml text the worker receives; [edge] also gives the store and TLS settings. */
  configText: string;
  host?: string;
  port?: number;
  /** Overrides [edge] store_dir. */
  storeDir?: string;
  /** Where workerd's output goes (default: this process's stderr). */
  log?: (line: string) => void;
  /** Overrides [edge] processes. */
  processes?: number;
  /** Behind the front door: the scheme comes from this header (see src/frontdoor/frontdoor.ts). */
  forwardedProtoHeader?: string;
}

export interface RunningWorkerdEdge extends RunningEdge {
  /** The workerd holding the store: the only one with processes = 1, the store process above. */
  proc: ChildProcess;
  /** processes > 1: the edge processes' supervisors (`sh` loops, each its own process group). */
  supervisors: ChildProcess[];
  /** processes > 1: the current pid of each edge workerd (it changes when one is restarted). */
  edgePids(): number[];
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
  // GeoIP for the trace: only files [geoip] names (the embedded default is too big to load into every edge).
  const geoip: Partial<Record<GeoBinding, string>> = {};
  const geoFiles: [GeoBinding, string | undefined][] = [
    ["GEOIP_CITY", config.geoip.city],
    ["GEOIP_CITY_V6", config.geoip.city_v6],
    ["GEOIP_ASN", config.geoip.asn],
    ["GEOIP_ASN_V6", config.geoip.asn_v6],
  ];
  for (const [binding, path] of geoFiles) {
    if (!path) continue;
    const name = `${binding.toLowerCase()}.bin`;
    copyFileSync(resolve(path), join(runDir, name));
    geoip[binding] = name;
  }
  if (edge.tls_cert && edge.tls_key) {
    copyFileSync(resolve(edge.tls_cert), join(runDir, "tls.crt"));
    rmSync(join(runDir, "tls.key"), { force: true });
    writeFileSync(join(runDir, "tls.key"), readFileSync(resolve(edge.tls_key)), { mode: 0o600 });
    files.tlsCert = "tls.crt";
    files.tlsKey = "tls.key";
  }
  const processes = opts.processes ?? edge.processes;
  if (!Number.isInteger(processes) || processes < 1) throw new Error(`processes must be a whole number >= 1, not ${processes}`);
  const compat = wranglerCompat();
  const store = { maxBytes: edge.store_max_bytes, inactiveSeconds };
  let storeAddress: string | undefined;
  let socketPath: string | undefined;
  if (processes > 1) {
    // A unix socket only this user reaches; a long store path (sun_path holds 108 bytes) gets one under tmpdir.
    socketPath = join(runDir, "store.sock");
    if (socketPath.length > 100) socketPath = join(mkdtempSync(join(tmpdir(), "parrot-store-")), "store.sock");
    rmSync(socketPath, { force: true });
    chmodSync(runDir, 0o700);
    storeAddress = `unix:${socketPath}`;
    writeFileSync(join(runDir, "store.capnp"), workerdStoreConfig({ ...compat, files, store, storeDir, address: storeAddress }));
  }
  const configPath = join(runDir, "edge.capnp");
  writeFileSync(
    configPath,
    workerdEdgeConfig({ ...compat, edge, configText: opts.configText, files, storeDir, store, storeAddress, geoip, forwardedProtoHeader: opts.forwardedProtoHeader }),
  );

  const host = opts.host ?? "127.0.0.1";
  const log = opts.log ?? ((line: string) => process.stderr.write(line));
  const pipeLog = (p: ChildProcess) => {
    p.stdout!.on("data", (c: Buffer) => log(c.toString()));
    p.stderr!.on("data", (c: Buffer) => log(c.toString()));
  };
  const listener = await listen(host, opts.port ?? 0);
  const port = (listener.address() as AddressInfo).port;
  const fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
  let proc: ChildProcess;
  const supervisors: ChildProcess[] = [];
  try {
    if (processes === 1) {
      proc = spawn(workerdBinary(), ["serve", configPath, "--socket-fd", "http=3"], {
        cwd: runDir,
        stdio: ["ignore", "pipe", "pipe", fd],
      });
      track(proc, false);
    } else {
      proc = spawn(workerdBinary(), ["serve", join(runDir, "store.capnp")], { cwd: runDir, stdio: ["ignore", "pipe", "pipe"] });
      track(proc, false);
    }
  } catch (err) {
    listener.close();
    throw err;
  }
  writeFileSync(pidFile, String(proc.pid));
  proc.once("exit", () => {
    if (storeHolder(pidFile) === null) rmSync(pidFile, { force: true });
  });
  pipeLog(proc);
  if (processes > 1) {
    try {
      await waitStore(socketPath!, proc);
    } catch (err) {
      listener.close();
      throw err;
    }
    for (let i = 0; i < processes; i++) {
      const pidOf = join(runDir, `edge-${i}.pid`);
      rmSync(pidOf, { force: true });
      const sup = spawn("sh", ["-c", SUPERVISOR, "parrot-edge", pidOf, workerdBinary(), "serve", configPath, "--socket-fd", "http=3"], {
        cwd: runDir,
        stdio: ["ignore", "pipe", "pipe", fd],
        detached: true,
      });
      track(sup, true);
      pipeLog(sup);
      supervisors.push(sup);
    }
  }
  listener.close(); // the workerd processes (and their supervisors) hold their own copies of the socket now
  const edgePids = () =>
    supervisors
      .map((_, i) => {
        try {
          return Number(readFileSync(join(runDir, `edge-${i}.pid`), "utf8").trim());
        } catch {
          return 0;
        }
      })
      .filter((pid) => pid > 0);
  const stopAll = async () => {
    await Promise.all(supervisors.map((sup) => stopChild(sup, true)));
    await stopChild(proc, false);
    if (socketPath) rmSync(socketPath, { force: true });
  };

  const scheme = files.tlsCert ? "https" : "http";
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const probeHost = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : hostPart;
  const url = `${scheme}://${hostPart}:${port}`;
  try {
    await waitHealthy(`${scheme}://${probeHost}:${port}/.well-known/cdn/health`, proc);
    // Every edge process has started (its supervisor wrote its pid) before the box counts as up.
    for (let i = 0; i < 600 && edgePids().length < supervisors.length; i++) await new Promise((r) => setTimeout(r, 50));
  } catch (err) {
    await stopAll();
    throw err;
  }

  return {
    url,
    proc,
    supervisors,
    edgePids,
    storeDir,
    configPath,
    recovered: { entries: scan.rows.length, removed: scan.removed },
    stop: stopAll,
  };
}

/**
 * The loop around one edge workerd (`sh -c SUPERVISOR parrot-edge PIDFILE workerd serve …`): it keeps fd 3 (the
 * listening socket) so it can start workerd again, records the current pid, and ends with its workerd on TERM/INT.
 */
const SUPERVISOR = `pidfile=$1; shift; child=
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM INT HUP
while :; do
  "$@" & child=$!
  echo "$child" > "$pidfile"
  wait "$child"; code=$?
  echo "parrot-edge: workerd $child exited ($code), starting it again" >&2
  sleep 0.2
done`;

/** Children still running when this process exits are ended with it (supervisors: their whole group). */
const live = new Map<ChildProcess, boolean>();
let exitHook = false;
function track(child: ChildProcess, group: boolean) {
  live.set(child, group);
  child.once("exit", () => live.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once("exit", () => {
    for (const [c, g] of live) {
      try {
        if (g) process.kill(-c.pid!, "SIGKILL");
        else c.kill("SIGKILL");
      } catch {
        /* gone */
      }
    }
  });
}

/** Waits until the store process answers on its unix socket. */
async function waitStore(socketPath: string, proc: ChildProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  let exited = false;
  proc.once("exit", () => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`the store workerd exited (${proc.exitCode ?? proc.signalCode}) before it was ready`);
    const ok = await new Promise<boolean>((done) => {
      const req = httpRequest({ socketPath, path: "/stats", method: "POST", host: "store" }, (res) => {
        res.resume();
        done(res.statusCode === 200);
      });
      req.on("error", () => done(false));
      req.end();
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill("SIGKILL");
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

function stopChild(proc: ChildProcess, group = false): Promise<void> {
  const signal = (s: NodeJS.Signals) => {
    try {
      if (group) process.kill(-proc.pid!, s);
      else proc.kill(s);
    } catch {
      /* gone */
    }
  };
  if (proc.exitCode !== null || proc.signalCode !== null) {
    if (group) signal("SIGKILL"); // whatever is left of its group
    return Promise.resolve();
  }
  return new Promise((done) => {
    const timer = setTimeout(() => signal("SIGKILL"), 5_000);
    proc.once("exit", () => {
      clearTimeout(timer);
      if (group) signal("SIGKILL");
      done();
    });
    signal("SIGTERM");
  });
}
