/**
 * The box's site functions (`[[functions]]`) on bare workerd: one workerd process per function (its own isolate and
 * thread: a function that loops stalls only its own site), each under its keeper (started again when it dies),
 * its watchdog (CPU budget, src/functions/watchdog.ts), and the edge's unix socket for their fetch() back in.
 *
 * Files, in `<run>/functions/<id>/`: `function.js` (the current deployed version, else `module` bundled now),
 * `harness.js`, `function.capnp`. Deployed versions live in `<config dir>/.parrot/functions/<id>/`
 * (src/node/function-versions.ts). A reload (SIGHUP) rebuilds each function's files and restarts the processes whose
 * files changed; functions added or removed apply at the next restart (the edge's bindings are set at its start).
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FunctionConfig } from "../config/functions-schema.ts";
import { FUNCTION_PROBE_PATH } from "../contracts/functions.ts";
import { functionToken } from "../functions/identity.ts";
import { cpuMsFromStat, Watchdog } from "../functions/watchdog.ts";
import { bundleModule, ROOT } from "./bundle.ts";
import { configPath, type ConfigFile } from "./config-file.ts";
import { currentVersionFile } from "./function-versions.ts";
import { functionProcessConfig, parseSecrets } from "./functions-config.ts";
import { exited, keepRunning, startProcess, stopProcess, type Kept } from "./process.ts";
import { workerdBinary } from "./workerd-host.ts";

export interface PreparedFunctions {
  /** Where the function processes' and the engine's unix sockets are (mode 0700). */
  socketDir: string;
  /** The edge's socket for functions' fetch(). */
  engineSocket: string;
  /** The key of the functions' identity on that socket (src/functions/identity.ts), the edge's FUNCTION_KEY. */
  key: string;
  functions: PreparedFunction[];
}

export interface PreparedFunction {
  id: string;
  dir: string;
  socket: string;
  config: string;
  budgetMs: number;
  /** Where function.js came from: `v3` (deployed) or the module's path. */
  source: string;
}

/**
 * Writes every function's files (bundling what needs it) and returns where the processes will listen. A function
 * that cannot be prepared (its module does not bundle, its secrets file is unreadable) is left out and its reason
 * logged: its site gets its on_error, the rest of the box serves.
 */
export async function prepareFunctions(
  file: ConfigFile,
  runDir: string,
  compat: { compatibilityDate: string },
  log: (line: string) => void,
  /** A reload: the running box's socket folder and key. */
  reuse?: Pick<PreparedFunctions, "socketDir" | "key">,
): Promise<PreparedFunctions> {
  let socketDir = reuse?.socketDir;
  const key = reuse?.key ?? randomBytes(32).toString("hex");
  const base = join(runDir, "functions");
  mkdirSync(base, { recursive: true });
  chmodSync(runDir, 0o700);
  // sun_path holds 108 bytes: a long run directory gets its sockets under tmpdir (a private folder).
  if (!socketDir) {
    socketDir = join(base, "sockets");
    if (socketDir.length > 80) socketDir = mkdtempSync(join(tmpdir(), "parrot-fn-"));
    mkdirSync(socketDir, { recursive: true, mode: 0o700 });
    chmodSync(socketDir, 0o700);
  }
  const harness = await bundleModule(join(ROOT, "src/functions/harness.ts"), ["./function.js"]);
  const engineSocket = join(socketDir, "engine.sock");
  const functions: PreparedFunction[] = [];
  for (const fn of file.config.functions) {
    try {
      functions.push(await prepareOne(file, fn, join(base, fn.id), join(socketDir, `${fn.id}.sock`), engineSocket, harness, `${fn.id} ${await functionToken(key, fn.id)}`, compat));
    } catch (err) {
      log(`${(err as Error).message}; not started (its site gets on_error = ${fn.on_error})\n`);
    }
  }
  return { socketDir, engineSocket, key, functions };
}

async function prepareOne(
  file: ConfigFile,
  fn: FunctionConfig,
  dir: string,
  socket: string,
  engineSocket: string,
  harness: Uint8Array,
  identity: string,
  compat: { compatibilityDate: string },
): Promise<PreparedFunction> {
  mkdirSync(dir, { recursive: true });
  const deployed = currentVersionFile(file, fn.id);
  let code: Uint8Array;
  let source: string;
  if (deployed) {
    code = readFileSync(deployed.path);
    source = deployed.version;
  } else {
    const entry = configPath(file, fn.module);
    try {
      code = await bundleModule(entry);
    } catch (err) {
      throw new Error(`functions "${fn.id}": module ${entry} does not bundle: ${(err as Error).message.replace(/\s*\n\s*/g, " ")}`);
    }
    source = fn.module;
  }
  const secrets = fn.secrets_file ? parseSecrets(readSecrets(configPath(file, fn.secrets_file), fn.id), fn.secrets_file) : {};
  writeFileSync(join(dir, "function.js"), code);
  writeFileSync(join(dir, "harness.js"), harness);
  // A compatibility date newer than the pinned workerd fails its start: the project's date is the newest it knows.
  const date = fn.compatibility_date > compat.compatibilityDate ? compat.compatibilityDate : fn.compatibility_date;
  const config = join(dir, "function.capnp");
  writeFileSync(
    config,
    functionProcessConfig({
      id: fn.id,
      compatibilityDate: date,
      compatibilityFlags: fn.compatibility_flags,
      files: { harness: "harness.js", module: "function.js" },
      address: `unix:${socket}`,
      engineAddress: `unix:${engineSocket}`,
      identity,
      vars: fn.vars,
      secrets,
      memoryMb: fn.memory_mb,
    }),
    { mode: 0o600 }, // it holds the function's secrets
  );
  return { id: fn.id, dir, socket, config, budgetMs: fn.cpu_ms, source };
}

function readSecrets(path: string, id: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`functions "${id}": secrets_file ${path}: ${(err as Error).message}`);
  }
}

/**
 * The edge's listening unix socket for functions, to hand to the edge processes (`--socket-fd functions=N`): made
 * under a temporary name and renamed into place, because Node removes a unix socket's path when it closes its copy.
 */
export function openEngineSocket(path: string): Promise<Server> {
  rmSync(path, { force: true });
  const aside = `${path}.${process.pid}.tmp`;
  return new Promise((done, fail) => {
    const server = createServer({ pauseOnConnect: true });
    server.once("error", fail);
    server.listen({ path: aside, backlog: 1024 }, () => {
      renameSync(aside, path);
      done(server);
    });
  });
}

export interface RunningFunction {
  id: string;
  kept: Kept;
  watchdog: Watchdog;
  /** The current workerd's pid. */
  pid(): number;
}

export interface RunningFunctions {
  running: RunningFunction[];
  /** Rebuilds each function's files from `file` and restarts the ones whose files changed; returns what it did. */
  reload(file: ConfigFile): Promise<string[]>;
  stop(): Promise<void>;
}

/** Starts one workerd per function, each kept running and watched. */
export function startFunctions(prepared: PreparedFunctions, runDir: string, compat: { compatibilityDate: string }, log: (line: string) => void): RunningFunctions {
  const running = prepared.functions.map((fn) => startOne(fn, log));
  const timers = running.map((r, i) => setInterval(() => r.watchdog.tick(), Math.max(5, Math.min(50, prepared.functions[i]!.budgetMs / 5))));
  const snapshot = (fn: PreparedFunction) => ["function.js", "function.capnp"].map((f) => readFileSync(join(fn.dir, f), "utf8")).join("\0");
  let current = new Map(prepared.functions.map((fn) => [fn.id, snapshot(fn)]));
  return {
    running,
    async reload(file) {
      const next = await prepareFunctions(file, runDir, compat, log, prepared);
      const notes: string[] = [];
      const seen = new Map<string, string>();
      for (const fn of next.functions) {
        const text = snapshot(fn);
        seen.set(fn.id, text);
        const r = running.find((x) => x.id === fn.id);
        if (!r) notes.push(`function ${fn.id} added: it runs after a restart of the box`);
        else if (current.get(fn.id) !== text) {
          process.kill(r.pid(), "SIGTERM"); // its keeper starts it again on the new files
          notes.push(`function ${fn.id} now runs ${fn.source}`);
        }
      }
      for (const r of running) {
        if (seen.has(r.id)) continue;
        if (file.config.functions.some((f) => f.id === r.id)) notes.push(`function ${r.id} not reloaded (see above): the running version stays`);
        else notes.push(`function ${r.id} removed from the config: its process runs until a restart of the box, its site is served without it`);
        seen.set(r.id, current.get(r.id)!);
      }
      current = seen;
      return notes;
    },
    async stop() {
      for (const t of timers) clearInterval(t);
      await Promise.all(running.map((r) => r.kept.stop()));
    },
  };
}

function startOne(fn: PreparedFunction, log: (line: string) => void): RunningFunction {
  const tag = (t: string) => log(t.replace(/^(?=.)/gm, `function ${fn.id}: `));
  rmSync(fn.socket, { force: true });
  const kept = keepRunning(
    { command: workerdBinary(), args: ["serve", fn.config], cwd: fn.dir, log: tag },
    { before: () => rmSync(fn.socket, { force: true }) }, // workerd does not bind over a stale socket file
  );
  const pid = () => kept.current.pid ?? 0;
  const watchdog = new Watchdog(fn.budgetMs, {
    cpuMs: () => {
      try {
        return cpuMsFromStat(readFileSync(`/proc/${pid()}/stat`, "utf8"));
      } catch {
        return undefined;
      }
    },
    probe: () => probeFunction(fn.socket),
    kill: (reason) => {
      log(`function ${fn.id}: watchdog killed pid ${pid()}: ${reason}\n`);
      try {
        process.kill(pid(), "SIGKILL");
      } catch {
        /* gone already */
      }
    },
  });
  return { id: fn.id, kept, watchdog, pid };
}

/** One probe over the function's socket: true when answered, false when it cannot connect. */
export function probeFunction(socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath)) return Promise.resolve(false);
  return new Promise((done) => {
    const req = httpRequest({ socketPath, path: FUNCTION_PROBE_PATH, host: "function", agent: false }, (res) => {
      res.resume();
      res.on("end", () => done(res.statusCode === 200));
      res.on("error", () => done(false));
    });
    req.on("error", () => done(false));
    req.end();
  });
}

/**
 * Waits until every function process answers its probe (bounded); returns the ids that did not (their sites get
 * their on_error until their process comes up: a broken function never keeps the box from serving).
 */
export async function waitFunctionsReady(prepared: PreparedFunctions, timeoutMs = 20_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const late: string[] = [];
  for (const fn of prepared.functions) {
    while (!(await probeFunction(fn.socket))) {
      if (Date.now() > deadline) {
        late.push(fn.id);
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return late;
}

/**
 * Whether a bundled function loads in workerd: it is started alone (its own temporary folder and socket, no engine
 * behind its fetch()) until it answers the watchdog's probe. Resolves undefined when it loads, else workerd's words.
 */
export async function validateFunction(code: Uint8Array, fn: FunctionConfig, compat: { compatibilityDate: string }, timeoutMs = 20_000): Promise<string | undefined> {
  const dir = mkdtempSync(join(tmpdir(), "parrot-fn-check-"));
  try {
    const harness = await bundleModule(join(ROOT, "src/functions/harness.ts"), ["./function.js"]);
    writeFileSync(join(dir, "function.js"), code);
    writeFileSync(join(dir, "harness.js"), harness);
    const socket = join(dir, "f.sock");
    writeFileSync(
      join(dir, "function.capnp"),
      functionProcessConfig({
        id: fn.id,
        compatibilityDate: fn.compatibility_date > compat.compatibilityDate ? compat.compatibilityDate : fn.compatibility_date,
        compatibilityFlags: fn.compatibility_flags,
        files: { harness: "harness.js", module: "function.js" },
        address: `unix:${socket}`,
        engineAddress: `unix:${join(dir, "no-engine.sock")}`,
        identity: `${fn.id} -`,
        vars: fn.vars,
        secrets: {},
        memoryMb: fn.memory_mb,
      }),
    );
    let output = "";
    const proc = startProcess({ command: workerdBinary(), args: ["serve", join(dir, "function.capnp")], cwd: dir, log: (t) => (output += t) });
    try {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (exited(proc)) return output.trim() || `workerd exited (${proc.exitCode ?? proc.signalCode})`;
        if (await probeFunction(socket)) return undefined;
        await new Promise((r) => setTimeout(r, 50));
      }
      return `it did not answer within ${timeoutMs / 1000} s${output ? `: ${output.trim()}` : ""}`;
    } finally {
      await stopProcess(proc);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
