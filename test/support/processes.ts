/** Starting the project's own commands as real processes for tests, and stopping them (whole process groups). */
import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");

export interface Running {
  proc: ChildProcess;
  /** The first match of `ready` in the process's stdout. */
  match: RegExpMatchArray;
  output: () => string;
  stop(): Promise<void>;
}

/** Runs `node <script> ...args` (Node 22 from node_modules) and waits until stdout matches `ready`. */
export function startNodeScript(script: string, args: string[], ready: RegExp, timeoutMs = 30_000): Promise<Running> {
  const proc = spawn(process.execPath, [resolve(ROOT, script), ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  return new Promise((resolveReady, reject) => {
    const timer = setTimeout(() => fail(new Error(`${script} not ready within ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      killGroup(proc);
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const match = out.match(ready);
      if (match) {
        clearTimeout(timer);
        resolveReady({ proc, match, output: () => out, stop: () => stopProcess(proc) });
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", (c: Buffer) => void (out += c.toString()));
    proc.once("exit", (code) => fail(new Error(`${script} exited (${code}) before it was ready:\n${out}`)));
  });
}

function killGroup(proc: ChildProcess, signal: NodeJS.Signals = "SIGTERM") {
  try {
    process.kill(-proc.pid!, signal);
  } catch {
    /* already gone */
  }
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  killGroup(proc, "SIGTERM");
  const timer = setTimeout(() => killGroup(proc, "SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}
