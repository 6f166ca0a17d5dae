/**
 * Site functions' versions through the control plane (`[control]`): `npm run fn -- deploy|rollback|list` write and
 * read them in the fleet's key-value bucket (`<namespace>_fleet`, src/control/fleet-kv.ts), every box with
 * `[[functions]]` installs the current ones (src/node/function-versions.ts, as a local deploy) and restarts that
 * function's process, and says what it runs.
 *
 *   fn.<id>.v<N>     FunctionVersion  the bundle of version N and where it came from (written once)
 *   fn.<id>.current  FunctionCurrent  the version rolled out, the one before it, its stage and canaries
 *   fnbox.<box>      FunctionsReport  what a box runs, per function, and why (its state)
 *
 * A deploy is staged as the fleet's configuration is (src/control/fleet.ts: the same record fields, targetVersion,
 * judgeCanaries, HealthWindow): the canaries run the new version first and watch it for `window_ms` (the edge's
 * health, and the function's error rate: exceptions over requests, processes killed or crashed); a canary whose
 * window fails goes back by itself; the deploying command (`rollOutFunction`) promotes the version to every box or
 * marks it rolled back. Version numbers are the fleet's: `v0` is the function's own `module` (nothing deployed).
 *
 * The bucket and not a JetStream Object Store: a bundle is one value of at most FLEET_MAX_VALUE_BYTES (1 MiB, the
 * bucket's and nats-server's default message limit), which a Worker's bundle fits (Cloudflare's own limit for a free
 * Worker is 3 MiB compressed: a larger bundle is refused at deploy, naming the limit); the bucket already keeps every
 * version, takes compare-and-set puts and is watched by every box; an Object Store would need another client
 * package (@nats-io/obj) for chunks no bundle here needs.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import type { ControlConfig } from "../config/control-schema.ts";
import type { VersionInfo } from "../node/function-versions.ts";
import { BOX_STATES, HealthWindow, judgeCanaries, parseRecord, targetVersion, type Staged } from "./fleet.ts";
import { askFleetBucket, FLEET_MAX_VALUE_BYTES, FleetKv, type KvEntry } from "./fleet-kv.ts";
import { nameToken } from "./messages.ts";
import { connectForever, retryOpening } from "./nats.ts";

const versionName = z.string().regex(/^v\d+$/);

export const FunctionVersionSchema = z
  .object({ v: z.literal(1), id: z.string(), version: versionName, code: z.string(), bytes: z.number().int(), sha256: z.string(), from: z.string(), at: z.string(), by: z.string() })
  .strict();
export type FunctionVersion = z.infer<typeof FunctionVersionSchema>;

export const FunctionCurrentSchema = z
  .object({
    v: z.literal(1),
    id: z.string(),
    version: versionName,
    at: z.number(),
    by: z.string(),
    // The stage (absent, as in records written before it existed: every box runs `version`).
    /** What every box ran before: where the boxes go back to (v0: the function's module). */
    previous: versionName.optional(),
    stage: z.enum(["canary", "all", "rolled-back"]).optional(),
    canaries: z.array(z.string()).optional(),
    window_ms: z.number().int().min(0).optional(),
    /** The share of requests a canary's version may throw on during its window (exceptions over requests). */
    max_error_rate: z.number().min(0).max(1).optional(),
    reason: z.string().optional(),
  })
  .strict();
export type FunctionCurrent = z.infer<typeof FunctionCurrentSchema>;

/** A box's state for one function, as the fleet's BoxStatus: versions as numbers (0: its module). */
export const FunctionStateSchema = z
  .object({ version: z.number().int().min(0), target: z.number().int().min(0), state: z.enum(BOX_STATES), reason: z.string(), at: z.number() })
  .strict();
export type FunctionState = z.infer<typeof FunctionStateSchema>;

export const FunctionsReportSchema = z
  .object({ v: z.literal(1), box: z.string(), functions: z.record(z.string(), z.string()), states: z.record(z.string(), FunctionStateSchema).optional(), at: z.number() })
  .strict();
export type FunctionsReport = z.infer<typeof FunctionsReportSchema>;

/** `v3` → 3; the module's path (nothing deployed) → 0. */
export const versionNumber = (v: string) => (/^v\d+$/.test(v) ? Number(v.slice(1)) : 0);

/** The record as the fleet's staged rollout (src/control/fleet.ts). */
export function staged(c: FunctionCurrent): Staged {
  return { version: versionNumber(c.version), previous: versionNumber(c.previous ?? c.version), stage: c.stage ?? "all", canaries: c.canaries ?? [] };
}

/** The version a box runs at this stage (`v0`: its module). */
export function functionTarget(c: FunctionCurrent, box: string): string {
  return `v${targetVersion(staged(c), box)}`;
}

/** How a function's current version fared (RunningFunctions.health): the canary window compares two readings. */
export interface FunctionFigures {
  version: string;
  requests: number;
  threw: number;
  restarts: number;
  kills: number;
}

/** What is wrong with a function since `base` (undefined: nothing): its process ended, or it threw on too many requests. */
export function functionProblem(base: FunctionFigures, now: FunctionFigures | undefined, maxErrorRate: number): string | undefined {
  if (!now) return "the box does not run the function";
  if (now.version !== base.version) return `it runs ${now.version}, not ${base.version}`;
  const ended = Math.max(now.restarts - base.restarts, now.kills - base.kills);
  if (ended > 0) return `its process ended ${ended} time(s) (${now.kills - base.kills} watchdog kill(s); the others: memory bound or crash)`;
  const requests = now.requests - base.requests;
  const threw = now.threw - base.threw;
  if (requests > 0 && threw / requests > maxErrorRate) return `it threw on ${threw} of ${requests} requests (above max_error_rate ${maxErrorRate})`;
  return undefined;
}

/**
 * A canary's window for a function version: the fleet's HealthWindow over the edge's health and the function's
 * figures since the window began. Pure: the caller feeds it readings and its clock.
 */
export class FunctionWindow {
  private readonly window: HealthWindow;
  private readonly base: FunctionFigures;
  private readonly maxErrorRate: number;

  constructor(now: number, windowMs: number, maxErrorRate: number, base: FunctionFigures) {
    this.window = new HealthWindow(now, windowMs);
    this.base = base;
    this.maxErrorRate = maxErrorRate;
  }

  record(figures: FunctionFigures | undefined, edgeProblem: string | undefined, now: number): ReturnType<HealthWindow["record"]> {
    return this.window.record(edgeProblem ?? functionProblem(this.base, figures, this.maxErrorRate), now);
  }
}

export const functionKeys = {
  version: (id: string, version: string) => `fn.${id}.${version}`,
  current: (id: string) => `fn.${id}.current`,
  box: (name: string) => `fnbox.${nameToken(name)}`,
};

const byNumber = (a: string, b: string) => Number(a.slice(1)) - Number(b.slice(1));

/** The versions of a function in the bucket, oldest first (without their code), and its current record. */
export async function fleetVersions(kv: FleetKv, id: string): Promise<{ versions: VersionInfo[]; current?: string; record?: FunctionCurrent; revision: number }> {
  const names = (await kv.keys(`fn.${id}.`)).map((k) => k.slice(`fn.${id}.`.length)).filter((v) => /^v\d+$/.test(v)).sort(byNumber);
  const versions: VersionInfo[] = [];
  for (const name of names) {
    const e = await kv.get(functionKeys.version(id, name));
    if (!e) continue;
    const r = parseRecord(FunctionVersionSchema, e.key, e.value);
    versions.push({ version: r.version, at: r.at, from: r.from, bytes: r.bytes });
  }
  const cur = await kv.get(functionKeys.current(id));
  const record = cur && parseRecord(FunctionCurrentSchema, cur.key, cur.value);
  return { versions, current: record?.version, record, revision: cur?.revision ?? 0 };
}

/** What every box runs once a record's rollout is over (v0: the module). */
export function settledVersion(r: FunctionCurrent | undefined): string {
  if (!r) return "v0";
  return r.stage === "canary" || r.stage === "rolled-back" ? (r.previous ?? "v0") : r.version;
}

export interface CanaryStage {
  canaries: string[];
  window_ms: number;
  max_error_rate: number;
}

/**
 * Stores `code` as the function's next version and makes it current: to `stage.canaries` first (the rest keep what
 * they run until `rollOutFunction` promotes it), or to every box without a stage.
 */
export async function publishFunction(
  kv: FleetKv,
  id: string,
  code: Uint8Array,
  from: string,
  by: string,
  stage?: CanaryStage,
  now = new Date(),
): Promise<{ version: FunctionVersion; record: FunctionCurrent; revision: number }> {
  const { versions, record: was, revision } = await fleetVersions(kv, id);
  if (was?.stage === "canary") throw new Error(`${id} ${was.version} is in its canary stage (since ${new Date(was.at).toISOString()}, by ${was.by}): wait for it, or \`fn -- rollback\` it`);
  const version = `v${versions.reduce((m, v) => Math.max(m, Number(v.version.slice(1))), 0) + 1}`;
  const stored: FunctionVersion = {
    v: 1,
    id,
    version,
    code: new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(code), // esbuild writes UTF-8
    bytes: code.byteLength,
    sha256: createHash("sha256").update(code).digest("hex"),
    from,
    at: now.toISOString(),
    by,
  };
  const value = JSON.stringify(stored);
  const size = Buffer.byteLength(value);
  if (size > FLEET_MAX_VALUE_BYTES - 4096) {
    throw new Error(`the bundle of ${id} is ${code.byteLength} bytes (${size} as a bucket value): the control plane takes at most ${FLEET_MAX_VALUE_BYTES - 4096} (nothing deployed)`);
  }
  const record: FunctionCurrent = {
    v: 1,
    id,
    version,
    at: now.getTime(),
    by,
    previous: settledVersion(was),
    stage: stage ? "canary" : "all",
    ...(stage ? { canaries: stage.canaries, window_ms: stage.window_ms, max_error_rate: stage.max_error_rate } : {}),
    reason: stage ? `deployed from ${from}: canaries first` : `deployed from ${from}`,
  };
  // Compare-and-set both: two deploys at once get distinct numbers, or the loser is told to try again.
  await kv.put(functionKeys.version(id, version), value, 0);
  const next = await kv.put(functionKeys.current(id), JSON.stringify(record), revision);
  return { version: stored, record, revision: next };
}

/** Makes a stored version current on every box at once (a rollback: no canary stage). */
export async function setFleetCurrent(kv: FleetKv, id: string, version: string, by: string): Promise<void> {
  const { versions, record: was, revision } = await fleetVersions(kv, id);
  if (!versions.some((v) => v.version === version)) throw new Error(`function ${id} has no version ${version} in the control plane (${versions.map((v) => v.version).join(", ") || "none"})`);
  const record: FunctionCurrent = { v: 1, id, version, at: Date.now(), by, previous: settledVersion(was), stage: "all", reason: "rolled back with fn rollback" };
  await kv.put(functionKeys.current(id), JSON.stringify(record), revision);
}

/** The version a rollback goes to: what every box ran before a deploy still in (or stopped at) its canary stage, else the one before the current one (by number). */
export function previousOf(versions: VersionInfo[], current: string | undefined, record?: FunctionCurrent): string | undefined {
  if (record && record.stage !== "all" && record.previous && record.previous !== "v0") return record.previous;
  const i = versions.findIndex((v) => v.version === current);
  return i > 0 ? versions[i - 1]!.version : undefined;
}

/** What every box said it runs. */
export async function functionReports(kv: FleetKv): Promise<FunctionsReport[]> {
  return (await kv.list("fnbox.")).map((e) => parseRecord(FunctionsReportSchema, e.key, e.value)).sort((a, b) => a.box.localeCompare(b.box));
}

/** The boxes that last said they run `version` of `id`, and the others with what they run. */
export function whereLive(reports: FunctionsReport[], id: string, version: string): { on: string[]; elsewhere: string[] } {
  const on: string[] = [];
  const elsewhere: string[] = [];
  for (const r of reports) {
    if (!(id in r.functions)) continue;
    if (r.functions[id] === version) on.push(r.box);
    else elsewhere.push(`${r.box} (${r.functions[id]})`);
  }
  return { on, elsewhere };
}

/** One line of a box's state for a function (`fn -- status`). */
export function describeFunctionState(r: FunctionsReport, id: string, now = Date.now()): string {
  const st = r.states?.[id];
  const ago = `${Math.max(0, Math.round((now - (st?.at ?? r.at)) / 1000))} s ago`;
  if (!st) return `${r.box}: runs ${r.functions[id]} (${ago})`;
  const asked = st.target === st.version ? "" : `, asked for v${st.target}`;
  return `${r.box}: runs ${r.functions[id]}${asked}: ${st.state}${st.reason ? ` (${st.reason})` : ""}, ${ago}`;
}

/**
 * The deploying command's part of a canary stage: waits for the canaries' verdicts (judgeCanaries over their
 * reports), then promotes the version to every box or marks it rolled back (every box goes back to `previous`).
 * 0: promoted; 1: rolled back.
 */
export async function rollOutFunction(
  kv: FleetKv,
  record: FunctionCurrent,
  revision: number,
  timeoutMs: number,
  say: (line: string) => void,
  sleep = (ms: number) => new Promise((r) => setTimeout(r, ms)),
): Promise<number> {
  const id = record.id;
  const deadline = record.at + (record.window_ms ?? 0) + timeoutMs;
  const judged = { version: versionNumber(record.version), canaries: record.canaries ?? [], at: record.at };
  for (;;) {
    const states = new Map<string, FunctionState>();
    for (const r of await functionReports(kv)) if (r.states?.[id]) states.set(r.box, r.states[id]!);
    const decision = judgeCanaries(judged, states, Date.now(), deadline);
    if (decision.decision === "wait") {
      await sleep(200);
      continue;
    }
    const next: FunctionCurrent =
      decision.decision === "promote"
        ? { ...record, stage: "all", reason: `canaries ${judged.canaries.join(", ")} healthy through ${(record.window_ms ?? 0) / 1000} s`, at: Date.now() }
        : { ...record, stage: "rolled-back", reason: decision.reason, at: Date.now() };
    await kv.put(functionKeys.current(id), JSON.stringify(next), revision);
    if (decision.decision === "promote") {
      say(`fn: ${next.reason}: ${id} ${record.version} goes to every box`);
      return 0;
    }
    say(`fn: ROLLED BACK: ${decision.reason}; every box runs ${record.previous === "v0" ? "its module" : record.previous} (${id} ${record.version} reached no box beyond the canaries)`);
    return 1;
  }
}

export interface FunctionsBox {
  box: string;
  cfg: ControlConfig;
  /** The box's `[[functions]]` ids. */
  ids: string[];
  /** The version this box has current for a function (or its module's path when none is deployed). */
  running(id: string): string;
  /** Stores a version as current for the box (false: it was already). */
  install(id: string, info: VersionInfo, code: Uint8Array): boolean;
  /** No deployed version current: the module again (false: it was already). */
  uninstall(id: string): boolean;
  /** The function's current version as its processes fared (a canary's window); undefined: not running. */
  health?(id: string): FunctionFigures | undefined;
  /** What is wrong with the box's edge (its health endpoint); undefined: nothing. */
  edgeProblem?(): Promise<string | undefined>;
  log: (line: string) => void;
}

/** Makes `version` (v0: the module) current on the box from the bucket; whether anything changed. */
async function installOne(kv: FleetKv, box: FunctionsBox, id: string, version: string): Promise<boolean> {
  if (version === "v0") return box.uninstall(id);
  const e = await kv.get(functionKeys.version(id, version));
  if (!e) throw new Error(`function ${id}: ${version} is current in the control plane but not stored there`);
  const r = parseRecord(FunctionVersionSchema, e.key, e.value);
  return box.install(id, { version, at: r.at, from: r.from, bytes: r.bytes }, new TextEncoder().encode(r.code));
}

/** Installs what the bucket's records ask of this box where it differs from the box's; what it did. */
async function catchUp(kv: FleetKv, box: FunctionsBox, ids: string[]): Promise<string[]> {
  const installed: string[] = [];
  for (const id of ids) {
    const cur = await kv.get(functionKeys.current(id));
    if (!cur) continue;
    const target = functionTarget(parseRecord(FunctionCurrentSchema, cur.key, cur.value), box.box);
    if (await installOne(kv, box, id, target)) installed.push(`${id} ${target}`);
  }
  return installed;
}

/**
 * Before the box starts its functions: the versions the bucket asks of it (within `timeoutMs`), so a box that
 * starts serves them from its first answer. Unreachable: the versions it installed last (its files). A line for its log.
 */
export async function catchUpFunctions(box: FunctionsBox, timeoutMs: number): Promise<string> {
  try {
    const installed = await askFleetBucket(box.cfg, `parrot-functions ${box.box} (boot)`, timeoutMs, (kv) => catchUp(kv, box, box.ids));
    return `${installed.length ? `installed ${installed.join(", ")}` : "up to date"} (control plane)`;
  } catch (err) {
    return `the control plane unreachable (${(err as Error).message}): the versions installed here last run`;
  }
}

/** How often a canary reads its figures during its window. */
const CHECK_EVERY_MS = 250;

/**
 * While the box runs: watches `fn.*.current`; the version a record asks of this box (its stage, its canaries) is
 * installed, then `reload` swaps that function's process (the local deploy's path), then the box reports what it runs
 * and why. A canary watches the new version for the record's window and goes back to `previous` by itself when it
 * regresses. After a partition the watch starts again and delivers the last value of each key: the box catches up.
 */
export async function followFunctions(box: FunctionsBox, reload: () => Promise<void>, sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))): Promise<{ stop(): Promise<void> }> {
  let stopped = false;
  let kv: FleetKv | undefined;
  let stopWatch: (() => void) | undefined;
  let queue = Promise.resolve();
  let close: (() => Promise<unknown>) | undefined;
  const states = new Map<string, FunctionState>();
  /** Canary stages this box judged (`<id> <version> <at>` → its verdict): a record seen again is not tried again. */
  const judged = new Map<string, FunctionState>();
  const report = async () => {
    const functions = Object.fromEntries(box.ids.map((id) => [id, box.running(id)]));
    const record: FunctionsReport = { v: 1, box: box.box, functions, states: Object.fromEntries(states), at: Date.now() };
    await kv?.put(functionKeys.box(box.box), JSON.stringify(record));
  };
  const setState = (id: string, target: string, state: FunctionState["state"], reason: string) =>
    states.set(id, { version: versionNumber(box.running(id)), target: versionNumber(target), state, reason, at: Date.now() });
  const install = async (id: string, version: string) => {
    if (!(await installOne(kv!, box, id, version))) return;
    await reload();
    box.log(`installed ${id} ${version === "v0" ? "its module" : version} from the control plane`);
  };
  /** A canary's window: undefined when it passed, else what regressed. */
  const watch = async (id: string, r: FunctionCurrent): Promise<string | undefined> => {
    const base = box.health?.(id);
    if (!base) return undefined; // nothing to read on this host: the window is the edge's health alone
    const window = new FunctionWindow(Date.now(), r.window_ms ?? 0, r.max_error_rate ?? 0, base);
    for (;;) {
      const verdict = window.record(box.health?.(id), await box.edgeProblem?.(), Date.now());
      if (verdict.verdict === "fail") return verdict.reason;
      if (verdict.verdict === "pass") return undefined;
      await sleep(CHECK_EVERY_MS);
    }
  };
  const apply = async (id: string) => {
    const cur = await kv!.get(functionKeys.current(id));
    if (!cur) return;
    const r = parseRecord(FunctionCurrentSchema, cur.key, cur.value);
    const key = `${id} ${r.version} ${r.at}`;
    const verdict = judged.get(key);
    if (verdict) {
      states.set(id, verdict); // judged already (a watch that started again): its verdict stands
      return;
    }
    let target = functionTarget(r, box.box);
    const canary = r.stage === "canary" && target === r.version;
    await install(id, target);
    if (!canary) {
      const why = r.stage === "canary" ? `not a canary (${(r.canaries ?? []).join(", ")} first)` : r.stage === "rolled-back" ? `${r.version} rolled back: ${r.reason ?? ""}` : (r.reason ?? "");
      setState(id, target, "applied", why);
      return;
    }
    setState(id, target, "checking", `canary: watching ${r.version} for ${(r.window_ms ?? 0) / 1000} s`);
    await report();
    const problem = await watch(id, r);
    if (problem) {
      target = r.previous ?? "v0";
      await install(id, target);
      setState(id, r.version, "rolled-back", problem);
      box.log(`canary: ${id} ${r.version} rolled back to ${target}: ${problem}`);
    } else setState(id, target, "applied", `canary: healthy through ${(r.window_ms ?? 0) / 1000} s`);
    judged.set(key, states.get(id)!);
  };
  const onEntry = (e: KvEntry) => {
    const id = e.key.split(".")[1]!;
    if (!box.ids.includes(id)) return;
    queue = queue
      .then(async () => {
        if (stopped || !kv) return;
        await apply(id);
        await report();
      })
      .catch((err: Error) => box.log(`installing from the control plane failed: ${err.message}`));
  };
  void (async () => {
    const nc = await connectForever(box.cfg, `parrot-functions ${box.box}`);
    close = () => nc.close().catch(() => undefined);
    await retryOpening(
      async () => {
        kv = await FleetKv.open(nc, box.cfg);
        stopWatch = await kv.watch("fn.*.current", onEntry);
        queue = queue.then(report).catch((err: Error) => box.log(`reporting failed: ${err.message}`));
      },
      () => stopped,
      (err) => box.log(`opening the fleet's bucket failed: ${err.message} (retrying)`),
    );
    if (stopped) await close();
  })().catch((err: Error) => box.log(err.message));
  return {
    async stop() {
      stopped = true;
      stopWatch?.();
      await queue;
      await close?.();
    },
  };
}
