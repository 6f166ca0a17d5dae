/**
 * `npm run fleet`: push a configuration to the fleet (the coordinator of its rollout), show where it stands, roll it
 * back or promote it. The rollout's decisions are taken here, one writer at a time (compare-and-set on the rollout
 * record): canaries first; once every canary ran the version through its health window, every box; a canary that
 * refused it or rolled it back stops the rollout and sends the canaries back to the version before.
 */
import { hostname, userInfo } from "node:os";
import type { NatsConnection } from "@nats-io/transport-node";
import { ConfigError, parseConfig, type CdnConfig } from "../config/config.ts";
import { configDigest } from "../contracts/config-digest.ts";
import { configuredEdges } from "./agent.ts";
import { ControlClient } from "./client.ts";
import { hasFrontDoor, planFrontDoor } from "../frontdoor/plan.ts";
import { boxConfigText } from "./fleet-config.ts";
import { fleetKeys } from "./fleet-box.ts";
import { mirrorsLayout } from "../redirector/shared-state.ts";
import { FleetKv } from "./fleet-kv.ts";
import {
  BoxStatusSchema,
  describeStatus,
  judgeCanaries,
  parseRecord,
  pickCanaries,
  RolloutSchema,
  targetVersion,
  type BoxStatus,
  type ConfigVersion,
  type RolloutRecord,
} from "./fleet.ts";
import { knownDown } from "./presence.ts";
import { connectOnce } from "./nats.ts";

export interface PushOptions {
  canaries?: string[];
  canaryFraction?: number;
  windowMs: number;
  probePath: string;
  probeTimeoutMs: number;
  /** How long to wait for every box once promoted (and for the canaries beyond their window). */
  timeoutMs: number;
}

type Say = (line: string) => void;

/** Everything the pushed file must pass before it is published: every schema, and the view of each box it lists. */
export function validatePush(text: string, source: string): CdnConfig {
  const config = parseConfig(text, source);
  const problems: string[] = [];
  const boxes = configuredEdges(config);
  if (config.acme?.issuer && boxes.length && !boxes.includes(config.acme.issuer)) {
    problems.push(`acme.issuer: no [[edges]] box is named ${config.acme.issuer} (${boxes.join(", ")})`);
  }
  for (const name of boxes) {
    try {
      const view = parseConfig(boxConfigText(text, `[edge]\nname = ${JSON.stringify(name)}\n`), `${source} as box ${name} runs it`);
      // The sites as the box's front door would plan them (names served twice, limits named twice…). Problems of
      // [acme] may come from the box's own tables ([admin] token, [control]): the box itself judges those.
      if (hasFrontDoor(view)) {
        try {
          planFrontDoor({ ...view, control: view.control ?? config.control }, `${source} as box ${name} runs it`);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          const sites = err.problems.filter((p) => p.startsWith("sites["));
          if (sites.length) throw new ConfigError(`${source} as box ${name} runs it`, sites);
        }
      }
    } catch (err) {
      problems.push(...(err instanceof ConfigError ? err.problems.map((p) => `box ${name}: ${p}`) : [`box ${name}: ${(err as Error).message}`]));
    }
  }
  if (problems.length) throw new ConfigError(source, problems);
  return config;
}

/** Who runs a fleet command (user@host), recorded with what it stores. */
export function by(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return hostname();
  }
}

interface Session {
  nc: NatsConnection;
  kv: FleetKv;
  client: ControlClient;
}

async function open(config: CdnConfig, err: Say): Promise<Session | undefined> {
  const cfg = config.control!;
  try {
    const nc = await connectOnce(cfg, "parrot-cdn fleet");
    try {
      const kv = await FleetKv.open(nc, cfg);
      // The redirectors' bucket too: with per-box keys only the operator may create it.
      await FleetKv.open(nc, cfg, undefined, mirrorsLayout(cfg.namespace));
      const client = await ControlClient.open(nc, cfg, configuredEdges(config));
      return { nc, kv, client };
    } catch (e) {
      await nc.close();
      throw e;
    }
  } catch (e) {
    err(`fleet: control plane unreachable (${cfg.servers.join(", ")}): ${(e as Error).message}`);
    return undefined;
  }
}

/** Runs `command` on an open session, closed after it; an error is said as `fleet: …` and exits 1. */
async function withSession(connectWith: CdnConfig, err: Say, command: (s: Session) => Promise<number>): Promise<number> {
  const s = await open(connectWith, err);
  if (!s) return 1;
  try {
    return await command(s);
  } catch (e) {
    err(`fleet: ${(e as Error).message}`);
    return 1;
  } finally {
    await s.nc.close().catch(() => undefined);
  }
}

async function readRollout(kv: FleetKv): Promise<{ revision: number; value: RolloutRecord } | undefined> {
  const e = await kv.get(fleetKeys.rollout);
  return e && { revision: e.revision, value: parseRecord(RolloutSchema, "rollout", e.value) };
}

async function readStatuses(kv: FleetKv): Promise<Map<string, BoxStatus>> {
  const out = new Map<string, BoxStatus>();
  for (const e of await kv.list("box.")) {
    try {
      const s = parseRecord(BoxStatusSchema, e.key, e.value);
      out.set(s.box, s);
    } catch {
      // A malformed status is ignored (the box writes a good one at its next change).
    }
  }
  return out;
}

/**
 * The fleet's boxes: those the config lists (`[[edges]]`) and those that have reported to the fleet's bucket; `live`:
 * the ones among them that follow the fleet (a status in the bucket) and run now (their agent's presence). A box
 * whose agent runs without `[control] fleet = true` never reports a status: it is named, never waited for.
 */
function boxesOf(s: Session, config: CdnConfig, statuses: ReadonlyMap<string, BoxStatus>): { live: string[]; known: string[] } {
  const presence = s.client.presence();
  const silentMs = 3 * config.control!.presence_interval_ms;
  const known = [...new Set([...configuredEdges(config), ...statuses.keys()])].sort();
  const live = known.filter((b) => statuses.has(b) && !knownDown(presence.get(b), Date.now(), silentMs));
  return { live, known };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until every box in `boxes` reports `version` as applied (or a final state for it), at most `timeoutMs`
 * (or until the ones left are known down); the boxes still pending.
 */
async function waitBoxes(s: Session, config: CdnConfig, boxes: readonly string[], record: RolloutRecord, timeoutMs: number): Promise<Map<string, BoxStatus>> {
  const deadline = Date.now() + timeoutMs;
  const silentMs = 3 * config.control!.presence_interval_ms;
  for (;;) {
    const statuses = await readStatuses(s.kv);
    const pending = boxes.filter((b) => {
      const st = statuses.get(b);
      const target = targetVersion(record, b);
      const done = st && st.target === target && st.at >= record.at && ["applied", "refused", "rolled-back"].includes(st.state);
      // Never reported to the fleet: not following it (or never started since it was set up), not waited for.
      return !done && !!st && !knownDown(s.client.presence().get(b), Date.now(), silentMs);
    });
    if (!pending.length || Date.now() > deadline) return statuses;
    await sleep(200);
  }
}

/** One line per box: what it runs and why. */
function boxLines(boxes: readonly string[], statuses: ReadonlyMap<string, BoxStatus>, record: RolloutRecord | undefined, s: Session, config: CdnConfig): string[] {
  const presence = s.client.presence();
  const silentMs = 3 * config.control!.presence_interval_ms;
  return boxes.map((b) => {
    const st = statuses.get(b);
    const target = targetVersion(record, b);
    const ok = st && st.state === "applied" && st.version === target;
    const down = knownDown(presence.get(b), Date.now(), silentMs);
    const mark = ok ? "ok     " : down ? "down   " : "pending";
    const note = !ok && !st && !down ? "; runs, but does not follow the fleet ([control] fleet = true in its own file?)" : down && !ok ? `; not running (applies version ${target || "its own file"} when it starts)` : "";
    return `${mark} ${b}: ${describeStatus(st)}${note}`;
  });
}

/** `fleet push FILE`: the exit status (0 applied on every running box, 1 rolled back or not everywhere, 2 invalid). */
export async function pushCommand(text: string, source: string, connectWith: CdnConfig, opts: PushOptions, out: Say, err: Say): Promise<number> {
  try {
    validatePush(text, source);
  } catch (e) {
    err((e as Error).message);
    return 2;
  }
  return withSession(connectWith, err, async (s) => {
    const current = await readRollout(s.kv);
    if (current?.value.stage === "canary") {
      err(`fleet: version ${current.value.version} is in its canary stage (since ${new Date(current.value.at).toISOString()}, by ${current.value.by}): \`fleet rollback\` or \`fleet promote\` it first`);
      return 1;
    }
    const statuses = await readStatuses(s.kv);
    const { live, known } = boxesOf(s, connectWith, statuses);
    let canaries: string[];
    try {
      canaries = pickCanaries(live, known, { names: opts.canaries, fraction: opts.canaryFraction });
    } catch (e) {
      err(`fleet: ${(e as Error).message}`);
      return 2;
    }
    // After the highest version stored, not only the record's: a push that stored its text and then died (or lost
    // the race for the record) leaves a version no record names.
    const storedVersions = (await s.kv.keys("config.")).map((key) => Number(key.slice("config.".length))).filter(Number.isInteger);
    const version = Math.max(current?.value.version ?? 0, ...storedVersions) + 1;
    const previous = current ? (current.value.stage === "all" ? current.value.version : current.value.previous) : 0;
    const stored: ConfigVersion = { v: 1, version, text, digest: configDigest(text), at: Date.now(), by: by() };
    await s.kv.put(fleetKeys.config(version), JSON.stringify(stored), 0);
    let record: RolloutRecord = {
      v: 1,
      version,
      previous,
      stage: "canary",
      canaries,
      window_ms: opts.windowMs,
      probe_path: opts.probePath,
      probe_timeout_ms: opts.probeTimeoutMs,
      reason: `pushed from ${source}`,
      at: Date.now(),
      by: stored.by,
    };
    let revision = await s.kv.put(fleetKeys.rollout, JSON.stringify(record), current?.revision ?? 0);
    out(`version ${version} stored (${source}, digest ${stored.digest}); before it: ${previous ? `version ${previous}` : "each box's own file"}`);
    out(`canary: ${canaries.join(", ")} (health window ${opts.windowMs / 1000} s)`);
    // The canaries: their window, plus the time to take the text (the edges read it within a second).
    const deadline = Date.now() + opts.windowMs + opts.timeoutMs;
    for (;;) {
      const decision = judgeCanaries(record, await readStatuses(s.kv), Date.now(), deadline);
      if (decision.decision === "wait") {
        await sleep(200);
        continue;
      }
      if (decision.decision === "rollback") {
        record = { ...record, stage: "rolled-back", reason: decision.reason, at: Date.now() };
        await s.kv.put(fleetKeys.rollout, JSON.stringify(record), revision);
        err(`fleet: ROLLED BACK: ${decision.reason}`);
        err(`fleet: version ${version} reached no box beyond the canaries; they go back to ${previous ? `version ${previous}` : "their own file"}`);
        const after = await waitBoxes(s, connectWith, canaries, record, opts.timeoutMs);
        for (const line of boxLines(canaries, after, record, s, connectWith)) out(line);
        return 1;
      }
      break;
    }
    record = { ...record, stage: "all", reason: `canaries ${canaries.join(", ")} healthy through ${opts.windowMs / 1000} s`, at: Date.now() };
    revision = await s.kv.put(fleetKeys.rollout, JSON.stringify(record), revision);
    out(`canaries healthy: version ${version} goes to every box`);
    const boxes = boxesOf(s, connectWith, await readStatuses(s.kv)).known;
    const after = await waitBoxes(s, connectWith, boxes, record, opts.timeoutMs);
    const lines = boxLines(boxes, after, record, s, connectWith);
    for (const line of lines) out(line);
    const took = boxes.map((b) => after.get(b)).filter((st) => st?.state === "applied" && st.version === version && st.since !== undefined);
    if (took.length) {
      const last = Math.max(...took.map((st) => st!.since!)) - stored.at;
      out(`version ${version} runs on ${took.length} of ${boxes.length} boxes; the last began ${(last / 1000).toFixed(1)} s after it was stored (canary window included)`);
    }
    const notApplied = boxes.filter((b) => !(after.get(b)?.state === "applied" && after.get(b)?.version === version));
    const running = notApplied.filter((b) => !knownDown(s.client.presence().get(b), Date.now(), 3 * connectWith.control!.presence_interval_ms));
    if (running.length) {
      err(`fleet: version ${version} not applied at: ${running.join(", ")}`);
      return 1;
    }
    return 0;
  });
}

/** `fleet status`: the rollout record and every box's state. */
export async function statusCommand(connectWith: CdnConfig, out: Say, err: Say): Promise<number> {
  return withSession(connectWith, err, async (s) => {
    const rollout = await readRollout(s.kv);
    const statuses = await readStatuses(s.kv);
    if (!rollout) out("rollout: no version pushed yet (every box runs its own file)");
    else {
      const r = rollout.value;
      out(`rollout: version ${r.version}, stage ${r.stage}${r.stage === "canary" ? ` (canaries ${r.canaries.join(", ")})` : ""}, since ${new Date(r.at).toISOString()} by ${r.by}: ${r.reason}`);
      out(`fleet version: ${r.stage === "all" ? r.version : r.previous || "each box's own file"}${r.stage === "all" ? "" : ` (version ${r.version} ${r.stage === "canary" ? "on the canaries only" : "rolled back"})`}`);
    }
    const { known } = boxesOf(s, connectWith, statuses);
    for (const line of boxLines(known, statuses, rollout?.value, s, connectWith)) out(line);
    return 0;
  });
}

/** `fleet rollback` (every box back to the version before) or `fleet promote` (a canary stage to every box). */
export async function moveCommand(kind: "rollback" | "promote", connectWith: CdnConfig, timeoutMs: number, out: Say, err: Say): Promise<number> {
  return withSession(connectWith, err, async (s) => {
    const rollout = await readRollout(s.kv);
    if (!rollout || rollout.value.stage === "rolled-back") {
      err(`fleet: nothing to ${kind}: ${rollout ? `version ${rollout.value.version} is already rolled back` : "no version pushed yet"}`);
      return 1;
    }
    if (kind === "promote" && rollout.value.stage !== "canary") {
      err(`fleet: nothing to promote: version ${rollout.value.version} already goes to every box`);
      return 1;
    }
    const record: RolloutRecord = {
      ...rollout.value,
      stage: kind === "rollback" ? "rolled-back" : "all",
      reason: `${kind === "rollback" ? "rolled back" : "promoted"} by ${by()}`,
      at: Date.now(),
      by: by(),
    };
    await s.kv.put(fleetKeys.rollout, JSON.stringify(record), rollout.revision);
    const target = kind === "rollback" ? record.previous : record.version;
    out(`${kind === "rollback" ? "rolled back" : "promoted"}: every box goes to ${target ? `version ${target}` : "its own file"}`);
    const boxes = boxesOf(s, connectWith, await readStatuses(s.kv)).known;
    const after = await waitBoxes(s, connectWith, boxes, record, timeoutMs);
    for (const line of boxLines(boxes, after, record, s, connectWith)) out(line);
    return 0;
  });
}
