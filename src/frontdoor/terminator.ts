/**
 * The terminator process: HAProxy in master-worker mode, under a small `sh` loop that holds the public listening
 * sockets (opened here, so port 0 works and ports below 1024 need only this process's capability) and starts
 * HAProxy again if it dies. A reload (SIGUSR2 to the master) starts a new worker on the same sockets; the old worker
 * finishes its connections (a long download continues) for up to `drain_seconds`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Server } from "node:net";
import { runtimeCommand } from "./haproxy-runtime.ts";

export interface TerminatorOptions {
  configPath: string;
  runDir: string;
  runtimeSocket: string;
  /** Listening sockets, passed as fd 3, 4, … in this order (the config binds fd@3, fd@4). */
  listeners: Server[];
  binary?: string;
  /** HAProxy's stdout (its JSON log lines), one line at a time. */
  onStdout: (line: string) => void;
  /** Its notices and warnings, and the loop's restart notes. */
  onStderr: (line: string) => void;
  onRestart: (exit: string) => void;
}

export interface Terminator {
  /** The loop process (its own process group). */
  loop: ChildProcess;
  /** The HAProxy master's pid now (it changes when the loop restarts it). */
  masterPid(): number;
  /** Reloads the config file; resolves when the new worker runs (rejects when the master could not load it). */
  reload(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `sh -c LOOP parrot-frontdoor PIDFILE haproxy …`: keeps fds 3+ and restarts HAProxy; ends it on TERM/INT, and
 * ends everything when the edge box command is gone.
 */
const LOOP = `pidfile=$1; shift; child=; parent=$PPID
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM INT HUP
# The edge box command gone without stopping us (kill -9): stop too, the public sockets must not outlive it.
( while kill -0 "$parent" 2>/dev/null; do sleep 1; done; kill -TERM 0 ) &
while :; do
  "$@" & child=$!
  echo "$child" > "$pidfile"
  wait "$child"; code=$?
  echo "parrot-frontdoor: haproxy $child exited ($code), starting it again" >&2
  sleep 1
done`;

/**
 * Runs `haproxy -c` with the listening sockets it will inherit (fd 3, 4, …): resolves when the config is valid,
 * else throws with HAProxy's own words.
 */
export function checkConfig(configPath: string, fds: number[], binary = "haproxy"): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = spawn(binary, ["-c", "-f", configPath], { stdio: ["ignore", "pipe", "pipe", ...fds] });
    let out = "";
    check.stdout!.on("data", (d) => (out += d));
    check.stderr!.on("data", (d) => (out += d));
    const timer = setTimeout(() => check.kill("SIGKILL"), 30_000);
    check.once("error", (err) => {
      clearTimeout(timer);
      const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
      reject(missing ? new Error(`${binary} not found: the front door needs HAProxy (apt-get install haproxy)`) : err);
    });
    check.once("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`HAProxy refuses ${configPath}:\n${out.replace(/^\[NOTICE\].*\n/gm, "").trim()}`));
    });
  });
}

function lines(stream: NodeJS.ReadableStream, each: (line: string) => void) {
  let rest = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    rest += chunk;
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      each(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
    }
    if (rest.length > 65_536) rest = rest.slice(-65_536);
  });
}

/** Starts HAProxy under its loop and resolves once its runtime API answers. */
export async function startTerminator(opts: TerminatorOptions): Promise<Terminator> {
  const binary = opts.binary ?? "haproxy";
  const fds = opts.listeners.map((l) => (l as unknown as { _handle: { fd: number } })._handle.fd);
  await checkConfig(opts.configPath, fds, binary);
  const pidFile = join(opts.runDir, "haproxy.pid");
  rmSync(pidFile, { force: true });
  const loop = spawn("sh", ["-c", LOOP, "parrot-frontdoor", pidFile, binary, "-W", "-db", "-f", opts.configPath], {
    cwd: opts.runDir,
    stdio: ["ignore", "pipe", "pipe", ...fds],
    detached: true,
  });
  for (const l of opts.listeners) l.close(); // the loop holds its own copies now
  let loadedWaiters: ((ok: boolean) => void)[] = [];
  lines(loop.stdout!, opts.onStdout);
  lines(loop.stderr!, (line) => {
    if (/Loading (success|failure)/.test(line)) {
      for (const w of loadedWaiters) w(/success/.test(line));
      loadedWaiters = [];
    }
    const restarted = /^parrot-frontdoor: haproxy \d+ exited \((\d+)\)/.exec(line);
    if (restarted) opts.onRestart(restarted[1]!);
    opts.onStderr(line);
  });
  const exitHook = () => {
    try {
      process.kill(-loop.pid!, "SIGKILL");
    } catch {
      /* gone */
    }
  };
  process.once("exit", exitHook);
  loop.once("exit", () => process.removeListener("exit", exitHook));

  const masterPid = () => {
    try {
      return Number(readFileSync(pidFile, "utf8").trim()) || 0;
    } catch {
      return 0;
    }
  };
  const stop = async () => {
    if (loop.exitCode !== null || loop.signalCode !== null) return;
    const exited = new Promise<void>((r) => loop.once("exit", () => r()));
    try {
      process.kill(-loop.pid!, "SIGTERM");
    } catch {
      return;
    }
    const timer = setTimeout(exitHook, 5_000);
    await exited;
    clearTimeout(timer);
    exitHook(); // anything left in the group
  };

  // Ready: the runtime API answers (the worker is up and holds the sockets).
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (loop.exitCode !== null) throw new Error(`the terminator loop exited (${loop.exitCode}) before HAProxy was ready`);
    const info = await runtimeCommand(opts.runtimeSocket, "show info", 2_000).catch(() => "");
    if (/^Pid:/m.test(info)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error("HAProxy not ready within 30 s");
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    loop,
    masterPid,
    // No `haproxy -c` first: the sockets live in the loop now; a config the master cannot load keeps the old worker.
    async reload() {
      const pid = masterPid();
      if (!pid) throw new Error("no HAProxy master to reload");
      process.kill(pid, "SIGUSR2");
      // The master's "Loading success" line can only arrive on a later turn of the event loop.
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("HAProxy did not report a successful reload within 30 s")), 30_000);
        loadedWaiters.push((ok) => {
          clearTimeout(timer);
          if (ok) resolve();
          else reject(new Error("HAProxy could not load the new config; the old worker keeps serving"));
        });
      });
    },
    stop,
  };
}
