/**
 * `npm run fleet -- geoip push FILE | rollback | status`: a City database published once to the fleet (checked
 * first: a corrupt or wrong-type file is refused and nothing is published), every DNS node and edge box with
 * `[geoip] fleet = true` swaps it in live; rollback points the fleet at the version before (still on every disk).
 */
import { readFileSync } from "node:fs";
import type { CdnConfig } from "../config/config.ts";
import { checkCityDatabase } from "../geoip/city-check.ts";
import { FleetKv } from "./fleet-kv.ts";
import { parseRecord } from "./fleet.ts";
import { describeGeoipStatus, geoipKeys, GeoipRecordSchema, GeoipStatusSchema, pushedRecord, rolledBackRecord, type GeoipRecord, type GeoipStatus } from "./geoip-fleet.ts";
import { GeoipObjects, sha256Hex } from "./geoip-objects.ts";
import { connectOnce } from "./nats.ts";
import { by } from "./fleet-command.ts";

type Say = (line: string) => void;

interface Session {
  kv: FleetKv;
  objects: GeoipObjects;
}

async function withSession(config: CdnConfig, err: Say, command: (s: Session) => Promise<number>): Promise<number> {
  const cfg = config.control!;
  let nc;
  try {
    nc = await connectOnce(cfg, "parrot-cdn fleet geoip");
  } catch (e) {
    err(`fleet: control plane unreachable (${cfg.servers.join(", ")}): ${(e as Error).message}`);
    return 1;
  }
  try {
    return await command({ kv: await FleetKv.open(nc, cfg), objects: await GeoipObjects.open(nc, cfg, true) });
  } catch (e) {
    err(`fleet: ${(e as Error).message}`);
    return 1;
  } finally {
    await nc.close().catch(() => undefined);
  }
}

async function readRecord(kv: FleetKv): Promise<{ revision: number; value: GeoipRecord } | undefined> {
  const e = await kv.get(geoipKeys.record);
  return e && { revision: e.revision, value: parseRecord(GeoipRecordSchema, geoipKeys.record, e.value) };
}

async function readStatuses(kv: FleetKv): Promise<GeoipStatus[]> {
  const out: GeoipStatus[] = [];
  for (const e of await kv.list(geoipKeys.statuses)) {
    try {
      out.push(parseRecord(GeoipStatusSchema, e.key, e.value));
    } catch {
      // A malformed status is ignored (the node writes a good one at its next change).
    }
  }
  return out.sort((a, b) => `${a.role} ${a.name}`.localeCompare(`${b.role} ${b.name}`));
}

const done = (s: GeoipStatus, version: number, after: number) => s.target === version && s.at >= after && s.state !== "fetching";

/** Waits until every node that ever reported has taken (or refused) `version`, at most `timeoutMs`; the lines. */
async function waitAndSay(s: Session, record: GeoipRecord, timeoutMs: number, out: Say): Promise<{ pending: string[]; refused: string[] }> {
  const deadline = Date.now() + timeoutMs;
  let statuses = await readStatuses(s.kv);
  while (Date.now() < deadline && statuses.some((st) => !done(st, record.current.version, record.at))) {
    await new Promise((r) => setTimeout(r, 200));
    statuses = await readStatuses(s.kv);
  }
  for (const st of statuses) out(`${st.role.padEnd(4)} ${st.name}: ${describeGeoipStatus(st, record)}`);
  const applied = statuses.filter((st) => st.state === "applied" && st.version === record.current.version && st.since !== undefined);
  if (applied.length) {
    const last = Math.max(...applied.map((st) => st.since!)) - record.at;
    out(`GeoIP version ${record.current.version} runs on ${applied.length} of ${statuses.length}; the last began ${(last / 1000).toFixed(1)} s after the record changed`);
  }
  const name = (st: GeoipStatus) => `${st.role} ${st.name}`;
  return {
    pending: statuses.filter((st) => !done(st, record.current.version, record.at)).map(name),
    refused: statuses.filter((st) => done(st, record.current.version, record.at) && st.state === "refused").map(name),
  };
}

/** `fleet geoip push FILE`: 0 applied everywhere, 1 refused or pending somewhere, 2 the file refused (nothing published). */
export async function geoipPushCommand(path: string, config: CdnConfig, timeoutMs: number, out: Say, err: Say): Promise<number> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch (e) {
    err(`fleet: cannot read ${path}: ${(e as Error).message}`);
    return 2;
  }
  let check;
  try {
    check = checkCityDatabase(bytes);
  } catch (e) {
    err(`fleet: ${path} refused, nothing published: ${(e as Error).message}`);
    return 2;
  }
  return withSession(config, err, async (s) => {
    const before = await readRecord(s.kv);
    const stored = (await s.objects.list()).map((o) => Number(/^v(\d+)\.mmdb$/.exec(o.name)?.[1] ?? 0));
    const version = Math.max(before?.value.current.version ?? 0, ...stored) + 1;
    const sha256 = sha256Hex(bytes);
    const t0 = performance.now();
    await s.objects.put(`v${version}.mmdb`, bytes, sha256);
    const published = performance.now() - t0;
    const at = Date.now();
    const record = pushedRecord(
      before?.value,
      { version, object: `v${version}.mmdb`, sha256, size: bytes.length, database_type: check.databaseType, built: check.built, source: path, at, by: by() },
      at,
      by(),
    );
    await s.kv.put(geoipKeys.record, JSON.stringify(record), before?.revision ?? 0);
    out(`GeoIP version ${version} stored (${check.databaseType}, ${bytes.length} bytes, sha256 ${sha256.slice(0, 12)}, built ${new Date(check.built).toISOString().slice(0, 10)}; ${check.located} of ${check.sampled} sampled records located) in ${Math.round(published)} ms`);
    out(`before it: ${record.previous ? `version ${record.previous.version}` : "each node's own [geoip] files"}`);
    const removed = await s.objects.prune([`v${version}.mmdb`, ...(record.previous ? [record.previous.object] : [])]);
    if (removed.length) out(`removed from the store: ${removed.join(", ")}`);
    const { pending, refused } = await waitAndSay(s, record, timeoutMs, out);
    if (refused.length) err(`fleet: GeoIP version ${version} refused at: ${refused.join(", ")}`);
    if (pending.length) err(`fleet: GeoIP version ${version} not confirmed within ${timeoutMs / 1000} s at: ${pending.join(", ")}`);
    return refused.length || pending.length ? 1 : 0;
  });
}

/** `fleet geoip rollback`: every node back to the version before. */
export async function geoipRollbackCommand(config: CdnConfig, timeoutMs: number, out: Say, err: Say): Promise<number> {
  return withSession(config, err, async (s) => {
    const before = await readRecord(s.kv);
    const next = rolledBackRecord(before?.value, Date.now(), by());
    if (typeof next === "string") {
      err(`fleet: nothing to roll back: ${next}`);
      return 1;
    }
    await s.kv.put(geoipKeys.record, JSON.stringify(next), before!.revision);
    out(`GeoIP rolled back: every node goes to version ${next.current.version} (${next.current.source})`);
    const { pending, refused } = await waitAndSay(s, next, timeoutMs, out);
    return refused.length || pending.length ? 1 : 0;
  });
}

/** `fleet status`'s GeoIP part: the version asked for and what each node and box runs. */
export async function geoipStatusCommand(config: CdnConfig, out: Say, err: Say): Promise<number> {
  return withSession(config, err, async (s) => {
    const record = (await readRecord(s.kv))?.value;
    out(record ? `geoip: version ${record.current.version} (${record.current.database_type}, ${record.current.size} bytes, from ${record.current.source}), since ${new Date(record.at).toISOString()} by ${record.by}: ${record.reason}` : "geoip: no database pushed (every node runs its own [geoip] files)");
    for (const st of await readStatuses(s.kv)) out(`${st.role.padEnd(4)} ${st.name}: ${describeGeoipStatus(st, record)}`);
    return 0;
  });
}
