/**
 * Site functions' versions through the control plane (`[control]`): `npm run fn -- deploy|rollback|list` write and
 * read them in the fleet's key-value bucket (`<namespace>_fleet`, src/control/fleet-kv.ts), every box with
 * `[[functions]]` installs the current ones (src/node/function-versions.ts, as a local deploy) and restarts that
 * function's process, and says what it runs.
 *
 *   fn.<id>.v<N>     FunctionVersion  the bundle of version N and where it came from (written once)
 *   fn.<id>.current  FunctionCurrent  the version every box runs
 *   fnbox.<box>      FunctionsReport  what a box runs, per function
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
import { parseRecord } from "./fleet.ts";
import { askFleetBucket, FLEET_MAX_VALUE_BYTES, FleetKv, type KvEntry } from "./fleet-kv.ts";
import { nameToken } from "./messages.ts";
import { connectForever, retryOpening } from "./nats.ts";

const versionName = z.string().regex(/^v\d+$/);

export const FunctionVersionSchema = z
  .object({ v: z.literal(1), id: z.string(), version: versionName, code: z.string(), bytes: z.number().int(), sha256: z.string(), from: z.string(), at: z.string(), by: z.string() })
  .strict();
export type FunctionVersion = z.infer<typeof FunctionVersionSchema>;

export const FunctionCurrentSchema = z.object({ v: z.literal(1), id: z.string(), version: versionName, at: z.number(), by: z.string() }).strict();
export type FunctionCurrent = z.infer<typeof FunctionCurrentSchema>;

export const FunctionsReportSchema = z.object({ v: z.literal(1), box: z.string(), functions: z.record(z.string(), z.string()), at: z.number() }).strict();
export type FunctionsReport = z.infer<typeof FunctionsReportSchema>;

export const functionKeys = {
  version: (id: string, version: string) => `fn.${id}.${version}`,
  current: (id: string) => `fn.${id}.current`,
  box: (name: string) => `fnbox.${nameToken(name)}`,
};

const byNumber = (a: string, b: string) => Number(a.slice(1)) - Number(b.slice(1));

/** The versions of a function in the bucket, oldest first (without their code). */
export async function fleetVersions(kv: FleetKv, id: string): Promise<{ versions: VersionInfo[]; current?: string; revision: number }> {
  const names = (await kv.keys(`fn.${id}.`)).map((k) => k.slice(`fn.${id}.`.length)).filter((v) => /^v\d+$/.test(v)).sort(byNumber);
  const versions: VersionInfo[] = [];
  for (const name of names) {
    const e = await kv.get(functionKeys.version(id, name));
    if (!e) continue;
    const r = parseRecord(FunctionVersionSchema, e.key, e.value);
    versions.push({ version: r.version, at: r.at, from: r.from, bytes: r.bytes });
  }
  const cur = await kv.get(functionKeys.current(id));
  return { versions, current: cur && parseRecord(FunctionCurrentSchema, cur.key, cur.value).version, revision: cur?.revision ?? 0 };
}

/** Stores `code` as the function's next version and makes it current. */
export async function publishFunction(kv: FleetKv, id: string, code: Uint8Array, from: string, by: string, now = new Date()): Promise<FunctionVersion> {
  const { versions, revision } = await fleetVersions(kv, id);
  const version = `v${versions.reduce((m, v) => Math.max(m, Number(v.version.slice(1))), 0) + 1}`;
  const record: FunctionVersion = {
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
  const value = JSON.stringify(record);
  const size = Buffer.byteLength(value);
  if (size > FLEET_MAX_VALUE_BYTES - 4096) {
    throw new Error(`the bundle of ${id} is ${code.byteLength} bytes (${size} as a bucket value): the control plane takes at most ${FLEET_MAX_VALUE_BYTES - 4096} (nothing deployed)`);
  }
  // Compare-and-set both: two deploys at once get distinct numbers, or the loser is told to try again.
  await kv.put(functionKeys.version(id, version), value, 0);
  await kv.put(functionKeys.current(id), JSON.stringify({ v: 1, id, version, at: now.getTime(), by } satisfies FunctionCurrent), revision);
  return record;
}

/** Makes a stored version current (a rollback). */
export async function setFleetCurrent(kv: FleetKv, id: string, version: string, by: string): Promise<void> {
  const { versions, revision } = await fleetVersions(kv, id);
  if (!versions.some((v) => v.version === version)) throw new Error(`function ${id} has no version ${version} in the control plane (${versions.map((v) => v.version).join(", ") || "none"})`);
  await kv.put(functionKeys.current(id), JSON.stringify({ v: 1, id, version, at: Date.now(), by } satisfies FunctionCurrent), revision);
}

/** The version before the current one (by number), for a rollback. */
export function previousOf(versions: VersionInfo[], current: string | undefined): string | undefined {
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

export interface FunctionsBox {
  box: string;
  cfg: ControlConfig;
  /** The box's `[[functions]]` ids. */
  ids: string[];
  /** The version this box has current for a function (or its module's path when none is deployed). */
  running(id: string): string;
  /** Stores a version as current for the box (false: it was already). */
  install(id: string, info: VersionInfo, code: Uint8Array): boolean;
  log: (line: string) => void;
}

/** Installs the function versions that are current in the bucket and differ from the box's; what it did. */
async function catchUp(kv: FleetKv, box: FunctionsBox, ids: string[]): Promise<string[]> {
  const installed: string[] = [];
  for (const id of ids) {
    const cur = await kv.get(functionKeys.current(id));
    if (!cur) continue;
    const { version } = parseRecord(FunctionCurrentSchema, cur.key, cur.value);
    const e = await kv.get(functionKeys.version(id, version));
    if (!e) throw new Error(`function ${id}: ${version} is current in the control plane but not stored there`);
    const r = parseRecord(FunctionVersionSchema, e.key, e.value);
    if (box.install(id, { version, at: r.at, from: r.from, bytes: r.bytes }, new TextEncoder().encode(r.code))) installed.push(`${id} ${version}`);
  }
  return installed;
}

/**
 * Before the box starts its functions: the current versions from the bucket (within `timeoutMs`), so a box that
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

/**
 * While the box runs: watches `fn.*.current`; a new current version of one of its functions is installed, then
 * `reload` restarts that function's process (the local deploy's path), then the box reports what it runs. After a
 * partition the watch starts again and delivers the last value of each key: the box catches up.
 */
export async function followFunctions(box: FunctionsBox, reload: () => Promise<void>): Promise<{ stop(): Promise<void> }> {
  let stopped = false;
  let kv: FleetKv | undefined;
  let stopWatch: (() => void) | undefined;
  let queue = Promise.resolve();
  let close: (() => Promise<unknown>) | undefined;
  const report = async () => {
    const functions = Object.fromEntries(box.ids.map((id) => [id, box.running(id)]));
    await kv?.put(functionKeys.box(box.box), JSON.stringify({ v: 1, box: box.box, functions, at: Date.now() } satisfies FunctionsReport));
  };
  const onEntry = (e: KvEntry) => {
    const id = e.key.split(".")[1]!;
    if (!box.ids.includes(id)) return;
    queue = queue
      .then(async () => {
        if (stopped || !kv) return;
        const installed = await catchUp(kv, box, [id]);
        if (installed.length) {
          await reload();
          box.log(`installed ${installed.join(", ")} from the control plane`);
        }
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
