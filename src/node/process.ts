/**
 * Child processes of the project's hosts, one way: started with their output piped to a log, ended with this
 * process, stopped with TERM then KILL, and kept running.
 *
 * Two ways of keeping a process running, for two needs:
 * - `keepRunning`: this Node process starts it again when it exits (after an optional `before`, e.g. recovering
 *   the store directory), with a pause that grows while it keeps dying young.
 * - `shellLoop`: a small `sh` loop that holds a listening socket (fd 3) and starts its workerd again on the same
 *   socket, so connections queued meanwhile are served rather than refused. Node cannot hold a listening socket
 *   without accepting on it, so the loop holds it.
 */
import { spawn, type ChildProcess } from "node:child_process";

/** Children still running when this process exits are ended with it (groups: the whole group). */
const live = new Map<ChildProcess, boolean>();
let exitHook = false;

/** Ends `child` (and with `group`, its process group) when this process exits, however it exits. */
export function endWithThisProcess(child: ChildProcess, group = false) {
  live.set(child, group);
  child.once("exit", () => live.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once("exit", () => {
    for (const [c, g] of live) signal(c, "SIGKILL", g);
  });
}

function signal(proc: ChildProcess, sig: NodeJS.Signals, group: boolean) {
  try {
    if (group) process.kill(-proc.pid!, sig);
    else proc.kill(sig);
  } catch {
    /* gone */
  }
}

export function exited(proc: ChildProcess): boolean {
  return proc.exitCode !== null || proc.signalCode !== null;
}

/** TERM, then KILL after `graceMs`; with `group`, the whole process group (and whatever is left of it at the end). */
export function stopProcess(proc: ChildProcess, opts: { group?: boolean; graceMs?: number } = {}): Promise<void> {
  const group = opts.group ?? false;
  if (exited(proc)) {
    if (group) signal(proc, "SIGKILL", true);
    return Promise.resolve();
  }
  return new Promise((done) => {
    const timer = setTimeout(() => signal(proc, "SIGKILL", group), opts.graceMs ?? 5_000);
    proc.once("exit", () => {
      clearTimeout(timer);
      if (group) signal(proc, "SIGKILL", true);
      done();
    });
    signal(proc, "SIGTERM", group);
  });
}

export interface ChildSpec {
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Extra stdio entries from fd 3 on (e.g. a listening socket's fd). */
  fds?: number[];
  /** Its own process group (stopped as a whole). */
  group?: boolean;
  /** Where stdout and stderr go, chunk by chunk. */
  log?: (text: string) => void;
}

/**
 * Starts a child; it ends when this process ends: at a normal exit through the exit hook, and at a kill -9 too
 * (setpriv's parent-death signal), so nothing of a box outlives its command.
 */
export function startProcess(spec: ChildSpec): ChildProcess {
  const proc = spawn("setpriv", ["--pdeathsig", "KILL", "--", spec.command, ...spec.args], {
    cwd: spec.cwd,
    env: spec.env,
    detached: spec.group ?? false,
    stdio: ["ignore", "pipe", "pipe", ...(spec.fds ?? [])],
  });
  endWithThisProcess(proc, spec.group ?? false);
  const log = spec.log ?? ((t: string) => process.stderr.write(t));
  proc.stdout!.on("data", (c: Buffer) => log(c.toString()));
  proc.stderr!.on("data", (c: Buffer) => log(c.toString()));
  return proc;
}

/** A child kept running by this process. */
export interface Kept {
  readonly current: ChildProcess;
  /** Times it was started again. */
  readonly restarts: number;
  /** TERM (KILL after `graceMs`, default 5 s); not started again. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Keeps a child running: when it exits (and `stop` was not called), `before` runs, then it starts again after a
 * pause (200 ms, doubling to 5 s while it keeps exiting within 10 s of its start). `onRestart` hears each restart.
 */
export function keepRunning(
  spec: ChildSpec,
  opts: { before?: () => void | Promise<void>; onRestart?: (proc: ChildProcess, code: number | string | null) => void } = {},
): Kept {
  let stopping = false;
  let restarts = 0;
  let pause = 200;
  let current = startProcess(spec);
  let startedAt = Date.now();
  const watch = (proc: ChildProcess) =>
    proc.once("exit", (code, sig) => {
      if (stopping) return;
      const log = spec.log ?? ((t: string) => process.stderr.write(t));
      log(`parrot: ${spec.command.split("/").pop()} ${proc.pid} exited (${code ?? sig}), starting it again\n`);
      pause = Date.now() - startedAt < 10_000 ? Math.min(pause * 2, 5_000) : 200;
      setTimeout(async () => {
        if (stopping) return;
        try {
          await opts.before?.();
        } catch (err) {
          log(`parrot: before restarting ${spec.command}: ${(err as Error).message}\n`);
        }
        if (stopping) return;
        current = startProcess(spec);
        startedAt = Date.now();
        restarts++;
        watch(current);
        opts.onRestart?.(current, code ?? sig);
      }, pause);
    });
  watch(current);
  return {
    get current() {
      return current;
    },
    get restarts() {
      return restarts;
    },
    stop(graceMs) {
      stopping = true;
      return stopProcess(current, { group: spec.group, graceMs });
    },
  };
}

/**
 * The loop around one workerd holding a listening socket as fd 3 (`sh -c SHELL_LOOP name PIDFILE PRE -- cmd…`):
 * it records the current pid in PIDFILE, runs PRE (a command line of `node script arg`, or "") before each
 * restart, and ends with its child on TERM/INT/HUP; its child dies with it (parent-death signal).
 */
const SHELL_LOOP = `pidfile=$1; pre=$2; shift 3; child=
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM INT HUP
first=1
while :; do
  if [ -z "$first" ] && [ -n "$pre" ]; then eval "$pre" || echo "parrot: $pre failed" >&2; fi
  first=
  setpriv --pdeathsig KILL -- "$@" & child=$!
  echo "$child" > "$pidfile"
  wait "$child"; code=$?
  echo "parrot: workerd $child exited ($code), starting it again" >&2
  sleep 0.2
done`;

/** A shell-quoted word. */
export function shellWord(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Starts `spec` under the shell loop (its own process group), with fd 3 = `socketFd` (and fd 4… = `moreFds`). */
export function shellLoop(spec: ChildSpec & { pidFile: string; socketFd: number; moreFds?: number[]; beforeRestart?: string[] }): ChildProcess {
  const pre = spec.beforeRestart ? spec.beforeRestart.map(shellWord).join(" ") : "";
  return startProcess({
    ...spec,
    command: "sh",
    args: ["-c", SHELL_LOOP, "parrot-edge", spec.pidFile, pre, "--", spec.command, ...spec.args],
    fds: [spec.socketFd, ...(spec.moreFds ?? [])],
    group: true,
  });
}
