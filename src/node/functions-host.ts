/**
 * The box's site functions (`[[functions]]`) on bare workerd: one workerd process per function (its own isolate and
 * thread: a function that loops stalls only its own site), each under its keeper (started again when it dies),
 * its watchdog (CPU budget, src/functions/watchdog.ts), and the edge's unix socket for their fetch() back in.
 *
 * Files, in `<run>/functions/<id>/g<N>/` (one folder per process generation): `function.js` (the current deployed
 * version, else `module` bundled now), `harness.js`, `function.capnp`. Deployed versions live in
 * `<config dir>/.parrot/functions/<id>/` (src/node/function-versions.ts).
 *
 * A reload (SIGHUP, a deploy, the fleet's version) swaps without dropping requests: a changed function's new process
 * starts on a socket of its own; once it answers, the edge's slot link is pointed at it (new connections go there)
 * and the old process gets SIGTERM, on which workerd stops taking requests, finishes the ones it has (at most
 * drainMs, then SIGKILL) and exits. Functions added or removed take or free a slot (PreparedFunctions.slots).
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, request as httpRequest } from "node:http";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { FunctionConfig } from "../config/functions-schema.ts";
import { FUNCTION_HOST_CPU_PATH, FUNCTION_PROBE_PATH, type FunctionsFile } from "../contracts/functions.ts";
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
  /** The host's socket for the edge (FUNCTION_HOST): a function process's CPU time, for the trace. */
  hostSocket: string;
  /** The key of the functions' identity on that socket (src/functions/identity.ts), the edge's FUNCTION_KEY. */
  key: string;
  /**
   * The edge's function bindings, FN_0 … FN_<slots-1>, each the socket `slot-<k>.sock`: a symbolic link the host
   * points at the process of the function in that slot (functions.json beside the edge's cdn.toml says which). More
   * slots than functions, so a function added on reload gets one without restarting the edge.
   */
  slots: number;
  functions: PreparedFunction[];
}

export interface PreparedFunction {
  id: string;
  budgetMs: number;
  /** How long a replaced process may take to finish its requests before it is killed. */
  drainMs: number;
  /** Where function.js came from: `v3` (deployed) or the module's path. */
  source: string;
  code: Uint8Array;
  harness: Uint8Array;
  /** Its workerd config, listening on `address`. */
  capnp(address: string): string;
  /** What a reload compares: the code and the config (a new process when it differs). */
  snapshot: string;
}

/** Spare slots beyond the functions a box starts with: functions added on reload (more need a restart of the box). */
const SPARE_SLOTS = 8;

/**
 * Bundles every function (or takes its deployed version) and makes its process's config; nothing is started. A
 * function that cannot be prepared (its module does not bundle, its secrets file is unreadable) is left out and its
 * reason logged: its site gets its on_error, the rest of the box serves.
 */
export async function prepareFunctions(
  file: ConfigFile,
  runDir: string,
  compat: { compatibilityDate: string },
  log: (line: string) => void,
  /** A reload: the running box's sockets, key and slots. */
  reuse?: Pick<PreparedFunctions, "socketDir" | "key" | "slots">,
): Promise<PreparedFunctions> {
  let socketDir = reuse?.socketDir;
  const key = reuse?.key ?? randomBytes(32).toString("hex");
  mkdirSync(join(runDir, "functions"), { recursive: true });
  chmodSync(runDir, 0o700);
  // sun_path holds 108 bytes: a long run directory gets its sockets under tmpdir (a private folder).
  if (!socketDir) {
    socketDir = join(runDir, "functions", "sockets");
    if (socketDir.length > 80) socketDir = mkdtempSync(join(tmpdir(), "parrot-fn-"));
    mkdirSync(socketDir, { recursive: true, mode: 0o700 });
    chmodSync(socketDir, 0o700);
  }
  const harness = await bundleModule(join(ROOT, "src/functions/harness.ts"), ["./function.js"]);
  const engineSocket = join(socketDir, "engine.sock");
  const functions: PreparedFunction[] = [];
  for (const fn of file.config.functions) {
    try {
      functions.push(await prepareOne(file, fn, engineSocket, harness, `${fn.id} ${await functionToken(key, fn.id)}`, compat));
    } catch (err) {
      log(`${(err as Error).message}; not started (its site gets on_error = ${fn.on_error})\n`);
    }
  }
  return { socketDir, engineSocket, hostSocket: join(socketDir, "host.sock"), key, slots: reuse?.slots ?? file.config.functions.length + SPARE_SLOTS, functions };
}

async function prepareOne(
  file: ConfigFile,
  fn: FunctionConfig,
  engineSocket: string,
  harness: Uint8Array,
  identity: string,
  compat: { compatibilityDate: string },
): Promise<PreparedFunction> {
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
  // A compatibility date newer than the pinned workerd fails its start: the project's date is the newest it knows.
  const date = fn.compatibility_date > compat.compatibilityDate ? compat.compatibilityDate : fn.compatibility_date;
  const capnp = (address: string) =>
    functionProcessConfig({
      id: fn.id,
      compatibilityDate: date,
      compatibilityFlags: fn.compatibility_flags,
      files: { harness: "harness.js", module: "function.js" },
      address,
      engineAddress: `unix:${engineSocket}`,
      identity,
      vars: fn.vars,
      secrets,
      memoryMb: fn.memory_mb,
    });
  const snapshot = `${Buffer.from(code).toString("base64")}\0${capnp("")}`;
  return { id: fn.id, budgetMs: fn.cpu_ms, drainMs: Math.max(fn.timeout_ms, 5_000), source, code, harness, capnp, snapshot };
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

/** The edge's socket (a symbolic link) for slot `k`. */
export const slotSocket = (socketDir: string, k: number) => join(socketDir, `slot-${k}.sock`);

/** One process of one version of a function (a reload that changes the function starts the next generation). */
interface Generation {
  id: string;
  n: number;
  slot: number;
  /** CPU time of its processes that exited, and of the current one as its watchdog last read it (ms). */
  cpu: { pid: number; doneMs: number; ms: number };
  /** The harness's counts (requests, thrown) as its probes answer them: of the processes that exited, and the current one's. */
  counts: { pid: number; done: FunctionCounts; now: FunctionCounts };
  source: string;
  snapshot: string;
  dir: string;
  socket: string;
  kept: Kept;
  watchdog: Watchdog;
}

export interface RunningFunction {
  id: string;
  /** The current process's watchdog. */
  readonly watchdog: Watchdog;
  /** The version it runs (`v3`, or the module's path). */
  readonly source: string;
  /** The current workerd's pid. */
  pid(): number;
}

/** What the harness of a function's process counts: the requests it was given, those it threw on. */
export interface FunctionCounts {
  requests: number;
  threw: number;
}

/** A function's current version as its processes fared since it started (the canary window compares two readings). */
export interface FunctionHealth extends FunctionCounts {
  version: string;
  /** Times its process exited and was started again (watchdog kills, memory bound, crashes). */
  restarts: number;
  kills: number;
}

export interface RunningFunctions {
  running: RunningFunction[];
  /** The current version's counts; undefined when the box does not run the function. */
  health(id: string): FunctionHealth | undefined;
  /** Waits until every function answers its probe (bounded); returns the ids that did not. */
  ready(timeoutMs?: number): Promise<string[]>;
  /**
   * Applies `file`'s functions: a changed one gets a new process, which takes the new requests once it answers while
   * the old one finishes its own (at most drainMs); added ones start, removed ones stop. Returns what it did.
   */
  reload(file: ConfigFile): Promise<string[]>;
  stop(): Promise<void>;
}

interface Slotted extends RunningFunction {
  slot: number;
  gen: Generation;
  timer: NodeJS.Timeout;
}

/**
 * Starts one workerd per function, each kept running and watched, and points the edge's slots at them
 * (`slotsFile`: the functions.json the edge reads beside its cdn.toml).
 */
export function startFunctions(prepared: PreparedFunctions, runDir: string, compat: { compatibilityDate: string }, log: (line: string) => void, slotsFile: string): RunningFunctions {
  let generations = 0;
  const draining = new Set<Generation>();
  const running: Slotted[] = [];

  const startGeneration = (fn: PreparedFunction, slot: number): Generation => {
    const n = ++generations;
    const dir = join(runDir, "functions", fn.id, `g${n}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "function.js"), fn.code);
    writeFileSync(join(dir, "harness.js"), fn.harness);
    const socket = join(prepared.socketDir, `s${slot}-g${n}.sock`);
    const config = join(dir, "function.capnp");
    writeFileSync(config, fn.capnp(`unix:${socket}`), { mode: 0o600 }); // it holds the function's secrets
    // Every line of its process (its console output, workerd's own) names the function and the version it runs.
    const tag = (t: string) => log(t.replace(/^(?=.)/gm, `function ${fn.id} ${fn.source}: `));
    rmSync(socket, { force: true });
    const kept = keepRunning(
      { command: workerdBinary(), args: ["serve", config], cwd: dir, log: tag },
      { before: () => rmSync(socket, { force: true }) }, // workerd does not bind over a stale socket file
    );
    const pid = () => kept.current.pid ?? 0;
    const cpu = { pid: 0, doneMs: 0, ms: 0 };
    const counts = { pid: 0, done: { requests: 0, threw: 0 }, now: { requests: 0, threw: 0 } };
    const counted = (c: FunctionCounts) => {
      const now = pid();
      if (now !== counts.pid) {
        // Started again: what the one before said last is kept.
        counts.done = { requests: counts.done.requests + counts.now.requests, threw: counts.done.threw + counts.now.threw };
        counts.pid = now;
      }
      counts.now = c;
    };
    const watchdog = new Watchdog(fn.budgetMs, {
      // Read every tick: the figures (functions.json) take the last reading, so a killed process's CPU is counted.
      cpuMs: () => {
        const now = pid();
        const ms = cpuOf(now);
        if (now !== cpu.pid) {
          cpu.doneMs += cpu.ms; // started again (watchdog, crash): the last reading of the one before is kept
          cpu.pid = now;
          cpu.ms = 0;
        }
        if (ms !== undefined) cpu.ms = ms;
        return ms;
      },
      probe: () => probeFunction(socket, counted),
      kill: (reason) => {
        log(`function ${fn.id}: watchdog killed pid ${pid()} (${fn.source}): ${reason}\n`);
        try {
          process.kill(pid(), "SIGKILL");
        } catch {
          /* gone already */
        }
      },
    });
    return { id: fn.id, n, slot, cpu, counts, source: fn.source, snapshot: fn.snapshot, dir, socket, kept, watchdog };
  };

  /** Points slot k at a process's socket in one step (a link made aside, renamed over the old one). */
  const link = (slot: number, socket: string) => {
    const path = slotSocket(prepared.socketDir, slot);
    const aside = `${path}.tmp`;
    rmSync(aside, { force: true });
    symlinkSync(basename(socket), aside);
    renameSync(aside, path);
  };
  /** Per function and version: the figures of the generations that ended. */
  const ended = new Map<string, FunctionsFile["processes"][number]>();
  const figures = (gen: Generation) => ({ id: gen.id, version: gen.source, cpu_ms: gen.cpu.doneMs + gen.cpu.ms, watchdog_kills: gen.watchdog.kills });
  const sum = (into: Map<string, FunctionsFile["processes"][number]>, f: FunctionsFile["processes"][number]) => {
    const key = `${f.id} ${f.version}`;
    const was = into.get(key);
    into.set(key, was ? { ...f, cpu_ms: was.cpu_ms + f.cpu_ms, watchdog_kills: was.watchdog_kills + f.watchdog_kills } : f);
  };
  /** functions.json for the edge: the slots, versions and figures (on every change, and every 2 s for the figures). */
  const writeSlots = () => {
    const all = new Map(ended);
    for (const g of [...running.map((r) => r.gen), ...draining]) sum(all, figures(g));
    const file: FunctionsFile = {
      // A removed function keeps its slot until it has drained: the edge may still follow the cdn.toml before.
      slots: Object.fromEntries([...[...draining].filter((g) => !running.some((r) => r.id === g.id)).map((g) => [g.id, g.slot]), ...running.map((r) => [r.id, r.slot])]),
      versions: Object.fromEntries(running.map((r) => [r.id, r.gen.source])),
      processes: [...all.values()],
    };
    const text = JSON.stringify(file);
    if (text === written) return; // unchanged: the edge's reads never meet a rename
    const aside = `${slotsFile}.tmp`;
    writeFileSync(aside, text);
    renameSync(aside, slotsFile);
    written = text;
  };
  let written = "";
  const figuresTimer = setInterval(writeSlots, 2_000);
  /** Lets a replaced or removed process finish what it was asked (workerd drains on SIGTERM), then removes it. */
  const drain = (gen: Generation, ms: number) => {
    draining.add(gen);
    return gen.kept.stop(ms).finally(() => {
      sum(ended, figures(gen));
      draining.delete(gen);
      rmSync(gen.socket, { force: true });
      rmSync(gen.dir, { recursive: true, force: true });
    });
  };
  const answers = async (gen: Generation, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await probeFunction(gen.socket)) return true;
      await new Promise((r) => setTimeout(r, 25));
    }
    return false;
  };
  /** Until a draining process refuses a new connection (bounded). */
  const refusing = async (gen: Generation, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && (await probeFunction(gen.socket))) await new Promise((r) => setTimeout(r, 10));
  };
  const add = (fn: PreparedFunction, slot: number, gen = startGeneration(fn, slot)): Slotted => {
    const r: Slotted = {
      id: fn.id,
      slot,
      gen,
      get watchdog() {
        return r.gen.watchdog;
      },
      get source() {
        return r.gen.source;
      },
      pid: () => r.gen.kept.current.pid ?? 0,
      timer: setInterval(() => r.gen.watchdog.tick(), Math.max(5, Math.min(50, fn.budgetMs / 5))),
    };
    link(slot, gen.socket);
    running.push(r);
    return r;
  };

  prepared.functions.forEach((fn, i) => add(fn, i));
  writeSlots();

  // The edge's trace asks the CPU time of a function's current process before and after its traced request.
  rmSync(prepared.hostSocket, { force: true });
  const hostServer = createHttpServer((req, res) => {
    const id = req.url?.startsWith(FUNCTION_HOST_CPU_PATH) ? decodeURIComponent(req.url.slice(FUNCTION_HOST_CPU_PATH.length)) : undefined;
    const r = running.find((x) => x.id === id);
    const ms = r && processCpuMs(r.pid());
    res.writeHead(ms === undefined ? 404 : 200, { "content-type": "application/json" });
    res.end(JSON.stringify(ms === undefined ? { error: `no process of function ${id}` } : { pid: r!.pid(), cpu_ms: ms }));
  });
  hostServer.on("error", (err) => log(`functions: the host's socket for the edge failed: ${err.message}\n`));
  hostServer.listen(prepared.hostSocket);

  let reloading: Promise<unknown> = Promise.resolve();
  const reloadNow = async (file: ConfigFile): Promise<string[]> => {
    const next = await prepareFunctions(file, runDir, compat, log, prepared);
    const notes: string[] = [];
    for (const fn of next.functions) {
      const r = running.find((x) => x.id === fn.id);
      if (r && r.gen.snapshot === fn.snapshot) continue;
      const busy = new Set(running.map((x) => x.slot));
      const slot = r?.slot ?? Array.from({ length: prepared.slots }, (_, k) => k).find((k) => !busy.has(k) && ![...draining].some((g) => g.slot === k));
      if (slot === undefined) {
        notes.push(`function ${fn.id} added: no free slot among the edge's ${prepared.slots}, it runs after a restart of the box`);
        continue;
      }
      const gen = startGeneration(fn, slot);
      if (!(await answers(gen, 20_000))) {
        await drain(gen, 0);
        notes.push(`function ${fn.id} not reloaded: ${fn.source} did not answer within 20 s (see its log above); the running version stays`);
        continue;
      }
      if (!r) {
        add(fn, slot, gen);
        writeSlots();
        notes.push(`function ${fn.id} added: runs ${fn.source}`);
        continue;
      }
      // New requests go to the new process from here; the old one finishes its own.
      const old = r.gen;
      r.gen = gen;
      link(slot, gen.socket);
      const drained = drain(old, fn.drainMs);
      // Said once the old process takes nothing new (SIGTERM is handled in its own time): from then on every
      // request the edge sends is the new version's.
      await Promise.race([drained, refusing(old, 5_000)]);
      notes.push(`function ${fn.id} now runs ${fn.source}`);
    }
    for (const r of [...running]) {
      if (next.functions.some((f) => f.id === r.id)) continue;
      if (file.config.functions.some((f) => f.id === r.id)) {
        notes.push(`function ${r.id} not reloaded (see above): the running version stays`);
        continue;
      }
      // Removed: its site is served without it once the edge follows the new cdn.toml (within a second), then it stops.
      running.splice(running.indexOf(r), 1);
      clearInterval(r.timer);
      const gen = r.gen;
      draining.add(gen);
      setTimeout(() => {
        writeSlots();
        void drain(gen, 5_000);
      }, 2_000);
      notes.push(`function ${r.id} removed: its process stops`);
    }
    return notes;
  };
  return {
    running,
    health(id) {
      const gen = running.find((r) => r.id === id)?.gen;
      if (!gen) return undefined;
      const { done, now } = gen.counts;
      return { version: gen.source, requests: done.requests + now.requests, threw: done.threw + now.threw, restarts: gen.kept.restarts, kills: gen.watchdog.kills };
    },
    async ready(timeoutMs = 20_000) {
      const late: string[] = [];
      await Promise.all(running.map(async (r) => (await answers(r.gen, timeoutMs)) || late.push(r.id)));
      return late;
    },
    reload(file) {
      // One at a time: a SIGHUP during a fleet's version waits for it.
      const done = reloading.then(() => reloadNow(file));
      reloading = done.catch(() => undefined);
      return done;
    },
    async stop() {
      clearInterval(figuresTimer);
      hostServer.close();
      for (const r of running) clearInterval(r.timer);
      await Promise.all([...running.map((r) => r.gen.kept.stop()), ...[...draining].map((g) => g.kept.stop())]);
    },
  };
}

/** A process's CPU time (ms) from /proc; undefined when it is gone. */
function cpuOf(pid: number): number | undefined {
  try {
    return pid ? cpuMsFromStat(readFileSync(`/proc/${pid}/stat`, "utf8")) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A process's CPU time (ms, to the nanosecond) from the scheduler's figures of each of its threads
 * (`/proc/<pid>/task/<tid>/schedstat`): /proc/<pid>/stat counts in 10 ms ticks, more than a request takes.
 */
export function processCpuMs(pid: number): number | undefined {
  if (!pid) return undefined;
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        /* the thread ended meanwhile */
      }
    }
    return ns / 1e6;
  } catch {
    return undefined;
  }
}

/** One probe over the function's socket: true when answered, false when it cannot connect. `counts` hears the harness's counts. */
export function probeFunction(socketPath: string, counts?: (c: FunctionCounts) => void): Promise<boolean> {
  if (!existsSync(socketPath)) return Promise.resolve(false);
  return new Promise((done) => {
    const req = httpRequest({ socketPath, path: FUNCTION_PROBE_PATH, host: "function", agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        const m = /^alive (\d+) (\d+)/.exec(body);
        if (res.statusCode === 200 && m) counts?.({ requests: Number(m[1]), threw: Number(m[2]) });
        done(res.statusCode === 200);
      });
      res.on("error", () => done(false));
    });
    req.on("error", () => done(false));
    req.end();
  });
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
