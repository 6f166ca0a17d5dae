/**
 * `npm run edge` and `npm start` run node under npm (npm → sh -c → node). npm forwards SIGINT and SIGTERM to the
 * script but dies of any other signal, SIGHUP included, leaving node running without it. A box started by npm
 * watches that npm and stops when it is gone, so a `kill -HUP` meant as a reload but sent to npm never leaves an
 * orphaned box behind (the reload goes to node: its pid is printed and in the pid file).
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";

interface ProcStat {
  /** R, S, Z… (Z: exited, not yet reaped). */
  state: string;
  ppid: number;
  /** Start time in clock ticks after boot: a pid used again by another process has another one. */
  start: string;
}

/** `/proc/<pid>/stat`, read now (undefined when there is no such process). */
export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid … starttime …": comm may hold spaces and parentheses, so fields count from the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0]!, ppid: Number(fields[1]), start: fields[19]! };
}

/** Whether a command line (`/proc/<pid>/cmdline`, NUL-separated; npm rewrites its own to "npm run edge") is npm's. */
export function isNpmCommandLine(cmdline: string): boolean {
  const args = cmdline.split("\0").filter(Boolean);
  const first = args[0] ?? "";
  return /^npm( |$)/.test(first) || /^np[mx]$/.test(basename(first)) || args.some((a) => /\/npm-cli\.js$|\/npx-cli\.js$/.test(a));
}

/** Whether a command line is a shell (npm runs scripts with `sh -c`). */
function isShell(cmdline: string): boolean {
  return /^(sh|dash|bash)$/.test(basename(cmdline.split("\0")[0] ?? ""));
}

function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

/** The npm process that runs this one (its parent, or its parent's parent through npm's `sh -c`), if any. */
export function npmParent(): { pid: number; start: string } | undefined {
  let pid = process.ppid;
  for (let hops = 0; hops < 2 && pid > 1; hops++) {
    const cmdline = cmdlineOf(pid);
    const stat = procStat(pid);
    if (!stat) return undefined;
    if (isNpmCommandLine(cmdline)) return { pid, start: stat.start };
    if (!isShell(cmdline)) return undefined;
    pid = stat.ppid;
  }
  return undefined;
}

/**
 * When npm runs this process, calls `onGone` once npm has exited (checked every second). Returns the npm pid
 * watched, or undefined.
 */
export function stopWithNpm(onGone: (npmPid: number) => void): number | undefined {
  const npm = npmParent();
  if (!npm) return undefined;
  const timer = setInterval(() => {
    const now = procStat(npm.pid);
    if (now && now.state !== "Z" && now.start === npm.start) return;
    clearInterval(timer);
    onGone(npm.pid);
  }, 1_000);
  timer.unref();
  return npm.pid;
}
