/**
 * The project's own commands as child processes (npm start's edges and DNS node; the tests' real processes):
 * started with Node 22, ready when their output says so, stopped as whole process groups.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { resolve } from "node:path";
import { endWithThisProcess, stopProcess } from "./process.ts";

export const ROOT = resolve(import.meta.dirname, "../..");

export interface Running {
  proc: ChildProcess;
  /** The first match of `ready` in the process's stdout. */
  match: RegExpMatchArray;
  output: () => string;
  stop(): Promise<void>;
}

/**
 * Runs `node <script> ...args` (this Node) and waits until stdout matches `ready`. Output is kept in memory for
 * `output()`, or, with `logFile`, appended to that file instead (long-running children). `env`: the child's
 * environment (default: this process's).
 */
export function startNodeScript(
  script: string,
  args: string[],
  ready: RegExp,
  timeoutMs = 30_000,
  logFile?: string,
  env?: NodeJS.ProcessEnv,
): Promise<Running> {
  const proc = spawn(process.execPath, [resolve(ROOT, script), ...args], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  endWithThisProcess(proc, true);
  const log = logFile ? createWriteStream(logFile, { flags: "a" }) : undefined;
  let out = "";
  let readyYet = false;
  return new Promise((resolveReady, reject) => {
    const timer = setTimeout(() => fail(new Error(`${script} not ready within ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      void stopProcess(proc, { group: true });
      reject(err);
    };
    const keep = (chunk: Buffer) => {
      log?.write(chunk);
      if (!log || !readyYet) out += chunk.toString();
    };
    const onData = (chunk: Buffer) => {
      keep(chunk);
      const match = readyYet ? null : out.match(ready);
      if (match) {
        readyYet = true;
        clearTimeout(timer);
        resolveReady({ proc, match, output: () => out, stop: () => stopProcess(proc, { group: true }) });
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", keep);
    proc.once("exit", (code) => {
      log?.end();
      if (!readyYet) fail(new Error(`${script} exited (${code}) before it was ready:\n${out}`));
    });
  });
}
