/**
 * A DNS node's or edge box's side of GeoIP through the fleet (Node): `[geoip] fleet = true`.
 *
 *   at start ── `bootGeoip`: the record's current version, fetched from the object store and checked, before the
 *     process answers with geo data; NATS unreachable → the version it last ran (kept in its folder), else its own
 *     [geoip] files.
 *   while it runs ── `followGeoip`: watches the record (an ordered consumer: after a partition it gets the last value
 *     again); a new version is fetched, checked (checkCityDatabase) and handed to `install`, which swaps it in live.
 *     The version it replaced stays on disk (a rollback needs no download). Each step is reported in
 *     `geoip-at.<role>.<name>` for `fleet -- status`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ControlConfig } from "../config/control-schema.ts";
import { checkCityDatabase } from "../geoip/city-check.ts";
import { FleetKv, type KvEntry } from "./fleet-kv.ts";
import { parseRecord } from "./fleet.ts";
import { geoipKeys, GeoipRecordSchema, type GeoipRecord, type GeoipRole, type GeoipStatus, type GeoipVersion } from "./geoip-fleet.ts";
import { GeoipObjects } from "./geoip-objects.ts";
import { connectForever, connectOnce, retryOpening } from "./nats.ts";

export interface GeoipFollowerOptions {
  cfg: ControlConfig;
  role: GeoipRole;
  name: string;
  /** Where the versions are kept (`<sha256>.mmdb`, `state.json`). */
  dir: string;
  log?: (line: string) => void;
}

/** What the process runs: a fleet version and its file, or its own files. */
export interface GeoipRunning {
  version?: GeoipVersion;
  path?: string;
  source: string;
}

interface LocalState {
  current: GeoipVersion | null;
  previous: GeoipVersion | null;
}

const fileOf = (dir: string, v: GeoipVersion) => join(dir, `${v.sha256}.mmdb`);

function readState(dir: string): LocalState {
  try {
    return JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as LocalState;
  } catch {
    return { current: null, previous: null };
  }
}

function writeState(dir: string, s: LocalState) {
  const aside = join(dir, `state.json.${process.pid}.tmp`);
  writeFileSync(aside, JSON.stringify(s));
  renameSync(aside, join(dir, "state.json"));
}

/** The version's file on disk, fetched and checked when it is not there yet. */
async function ensureLocal(dir: string, objects: GeoipObjects, v: GeoipVersion): Promise<string> {
  const path = fileOf(dir, v);
  if (existsSync(path) && statSync(path).size === v.size) return path;
  const bytes = await objects.get(v.object, v.sha256);
  try {
    checkCityDatabase(bytes);
  } catch (err) {
    throw new Error(`version ${v.version} refused: ${(err as Error).message}`);
  }
  mkdirSync(dir, { recursive: true });
  const aside = `${path}.${process.pid}.tmp`;
  writeFileSync(aside, bytes);
  renameSync(aside, path);
  return path;
}

/** Removes every kept file but these versions'. */
function pruneLocal(dir: string, keep: (GeoipVersion | null)[]) {
  const names = new Set(keep.filter((v): v is GeoipVersion => !!v).map((v) => `${v.sha256}.mmdb`));
  for (const f of readdirSync(dir)) if (f.endsWith(".mmdb") && !names.has(f)) rmSync(join(dir, f), { force: true });
}

/** The version to start with (asked within `timeoutMs`), else the one last run here, else the own files. */
export async function bootGeoip(opts: GeoipFollowerOptions, timeoutMs: number): Promise<GeoipRunning> {
  mkdirSync(opts.dir, { recursive: true });
  let nc: Awaited<ReturnType<typeof connectOnce>> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const asked = (async (): Promise<GeoipRunning> => {
    nc = await connectOnce({ ...opts.cfg, publish_timeout_ms: Math.min(opts.cfg.publish_timeout_ms, Math.max(timeoutMs, 100)) }, `parrot-geoip ${opts.name} (boot)`);
    const kv = await FleetKv.open(nc, opts.cfg);
    const e = await kv.get(geoipKeys.record);
    if (!e) return { source: "own [geoip] files (no GeoIP database pushed to the fleet yet)" };
    const record = parseRecord(GeoipRecordSchema, geoipKeys.record, e.value);
    const path = await ensureLocal(opts.dir, await GeoipObjects.open(nc, opts.cfg, false), record.current);
    const local = readState(opts.dir);
    if (local.current?.sha256 !== record.current.sha256) writeState(opts.dir, { current: record.current, previous: local.current });
    return { version: record.current, path, source: `fleet GeoIP version ${record.current.version}` };
  })();
  try {
    return await Promise.race([asked, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)))]);
  } catch (err) {
    const local = readState(opts.dir);
    const why = (err as Error).message;
    if (local.current && existsSync(fileOf(opts.dir, local.current)))
      return { version: local.current, path: fileOf(opts.dir, local.current), source: `fleet GeoIP version ${local.current.version}, as last run here (the fleet unreachable: ${why})` };
    return { source: `own [geoip] files (the fleet unreachable: ${why}; no fleet version run here before)` };
  } finally {
    clearTimeout(timer);
    void asked.catch(() => undefined).finally(() => void nc?.close().catch(() => undefined));
  }
}

export interface GeoipFollower {
  readonly running: GeoipVersion | undefined;
  stop(): Promise<void>;
}

/** Follows the record; `install` swaps a checked file in (it throws when the process refuses it). */
export function followGeoip(opts: GeoipFollowerOptions, started: GeoipRunning, install: (path: string, v: GeoipVersion) => Promise<void>): GeoipFollower {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${new Date().toISOString()} geoip: ${line}\n`));
  let running = started.version;
  let since = Date.now();
  let stopped = false;
  let kv: FleetKv | undefined;
  let objects: GeoipObjects | undefined;
  let queue = Promise.resolve();
  let stopWatch: (() => void) | undefined;
  let closeOnStop: (() => Promise<unknown>) | undefined;
  let connection: NatsConnection | undefined;

  const report = async (target: number, state: GeoipStatus["state"], reason: string) => {
    const s: GeoipStatus = {
      v: 1,
      name: opts.name,
      role: opts.role,
      version: running?.version ?? 0,
      sha256: running?.sha256 ?? "",
      target,
      state,
      reason,
      ...(state === "applied" ? { since } : {}),
      at: Date.now(),
    };
    await kv?.put(geoipKeys.status(opts.role, opts.name), JSON.stringify(s)).catch((err: Error) => log(`reporting ${state} failed: ${err.message}`));
  };

  const reconcile = async (record: GeoipRecord | undefined) => {
    if (stopped) return;
    if (!record) return report(0, "applied", started.source);
    const want = record.current;
    if (running?.sha256 === want.sha256) return report(want.version, "applied", record.reason);
    try {
      await report(want.version, "fetching", `${want.size} bytes`);
      const t0 = performance.now();
      // The store is made by the first push: open it when a version names it.
      objects ??= await GeoipObjects.open(connection!, opts.cfg, false);
      const path = await ensureLocal(opts.dir, objects, want);
      const fetched = performance.now();
      await install(path, want);
      const before = running;
      running = want;
      since = Date.now();
      writeState(opts.dir, { current: want, previous: before ?? null });
      pruneLocal(opts.dir, [want, before ?? null, record.previous]);
      log(`GeoIP version ${want.version} (${want.database_type}, ${want.size} bytes) in service: fetched and checked in ${Math.round(fetched - t0)} ms, swapped in ${Math.round(performance.now() - fetched)} ms`);
      await report(want.version, "applied", record.reason);
    } catch (err) {
      log(`GeoIP version ${want.version} not taken, version ${running?.version ?? "(own files)"} stays: ${(err as Error).message}`);
      await report(want.version, "refused", (err as Error).message.slice(0, 300));
    }
  };

  const enqueue = (record: GeoipRecord | undefined) => {
    queue = queue.then(() => reconcile(record)).catch((err: Error) => log(`following GeoIP failed: ${err.message}`));
  };

  void (async () => {
    const nc = await connectForever(opts.cfg, `parrot-geoip ${opts.role} ${opts.name}`);
    if (stopped) return void (await nc.close());
    connection = nc;
    closeOnStop = () => nc.close().catch(() => undefined);
    await retryOpening(
      async () => {
        kv = await FleetKv.open(nc, opts.cfg);
        objects = await GeoipObjects.open(nc, opts.cfg, false).catch(() => undefined);
        stopWatch = await kv.watch(geoipKeys.record, (e: KvEntry) => {
          try {
            const record = parseRecord(GeoipRecordSchema, geoipKeys.record, e.value);
            enqueue(record);
          } catch (err) {
            log((err as Error).message);
          }
        });
        if (!(await kv.get(geoipKeys.record))) enqueue(undefined);
      },
      () => stopped,
      (err) => log(`opening the fleet's GeoIP failed: ${err.message} (retrying)`),
    );
  })().catch((err: Error) => log(err.message));

  return {
    get running() {
      return running;
    },
    async stop() {
      stopped = true;
      stopWatch?.();
      await queue;
      await closeOnStop?.();
    },
  };
}
