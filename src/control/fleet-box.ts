/**
 * A box's side of the fleet rollout (Node, run by `npm run edge` when its own file says `[control] fleet = true`).
 *
 *   before the edge starts ── `fleetBootConfig`: the rollout record's version for this box, merged with the box's
 *     own file; NATS unreachable → the version this box last applied (kept in its store's run folder), else its
 *     own file alone. So a box that starts, or comes back from a partition, serves the current version.
 *   while it runs ── `startFleetMember`: watches the rollout record; when its target changes it merges, applies
 *     through the live reload (the same path as SIGHUP), waits until the edge answers with the new text's digest,
 *     then watches its health for the window (the edge's health, every origin of the new config); a regression
 *     puts the version it ran before back at once. Each step is reported in `box.<name>`.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { ControlConfig } from "../config/control-schema.ts";
import { CONFIG_DIGEST_HEADER } from "../contracts/config-digest.ts";
import { HEALTH_PATH } from "../contracts/well-known.ts";
import { boxConfigText } from "./fleet-config.ts";
import { askFleetBucket, FleetKv, type KvEntry } from "./fleet-kv.ts";
import { BoxStatusSchema, ConfigVersionSchema, HealthWindow, parseRecord, RolloutSchema, targetVersion, type BoxStatus, type RolloutRecord } from "./fleet.ts";
import { nameToken } from "./messages.ts";
import { connectForever, retryOpening } from "./nats.ts";

/** The shared text of a version (0: none, the box's own file alone). */
export interface FleetVersion {
  version: number;
  shared: string | undefined;
}

/** What the box command does with a version's merged text: validate, write it for the edge workers. */
export interface AppliedText {
  /** The digest of the text the edge workers now read (see config-digest.ts). */
  digest: string;
  /** The origins of the new config, asked during the health window. */
  origins: string[];
  /** Restart-only fields that changed (they apply at the next start). */
  later: string[];
}

export interface FleetBoxOptions {
  box: string;
  cfg: ControlConfig;
  /** The box's own file's text (read again on SIGHUP: `setLocal`). */
  localText: string;
  /** Where the last applied version is kept (`<store>/.run/fleet-version.json`). */
  statePath: string;
  log?: (line: string) => void;
}

const bucketKeys = {
  rollout: "rollout",
  config: (n: number) => `config.${n}`,
  box: (name: string) => `box.${nameToken(name)}`,
};

/** Reads a version's shared text from the bucket. */
async function readVersion(kv: FleetKv, version: number): Promise<FleetVersion> {
  if (version === 0) return { version, shared: undefined };
  const e = await kv.get(bucketKeys.config(version));
  if (!e) throw new Error(`fleet: version ${version} is not in the bucket`);
  return { version, shared: parseRecord(ConfigVersionSchema, bucketKeys.config(version), e.value).text };
}

/** The merged text of a version for this box. */
export function mergedText(v: FleetVersion, localText: string): string {
  return v.shared === undefined ? localText : boxConfigText(v.shared, localText);
}

function readCached(path: string): FleetVersion | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const raw = JSON.parse(readFileSync(path, "utf8")) as FleetVersion;
    return Number.isInteger(raw.version) ? raw : undefined;
  } catch {
    return undefined;
  }
}

function writeCached(path: string, v: FleetVersion) {
  mkdirSync(dirname(path), { recursive: true });
  const aside = `${path}.${process.pid}.tmp`;
  writeFileSync(aside, JSON.stringify(v), { mode: 0o600 });
  renameSync(aside, path);
}

/**
 * The version this box should start with: the rollout record's (asked within `timeoutMs`), else the one it last
 * applied, else its own file. `source` says which, for the box's log.
 */
export async function fleetBootConfig(opts: FleetBoxOptions, timeoutMs: number): Promise<FleetVersion & { source: string }> {
  try {
    const v = await askFleetBucket(opts.cfg, `parrot-fleet ${opts.box} (boot)`, timeoutMs, async (kv) => {
      const record = await kv.get(bucketKeys.rollout);
      return readVersion(kv, targetVersion(record && parseRecord(RolloutSchema, "rollout", record.value), opts.box));
    });
    writeCached(opts.statePath, v);
    return { ...v, source: v.version ? `fleet version ${v.version}` : "own file (no version pushed yet)" };
  } catch (err) {
    const cached = readCached(opts.statePath);
    const why = (err as Error).message;
    if (cached) return { ...cached, source: `fleet version ${cached.version}, as last applied here (the fleet's bucket unreachable: ${why})` };
    return { version: 0, shared: undefined, source: `own file (the fleet's bucket unreachable: ${why}; no version applied here before)` };
  }
}

export interface FleetMember {
  /** The version the box runs. */
  readonly running: number;
  /** The box's own file changed (SIGHUP): the running version is merged with it again. */
  setLocal(text: string): void;
  stop(): Promise<void>;
}

export interface FleetMemberHooks {
  /**
   * Validates and writes the merged text (throws, naming the field, when it is not a valid config); resolves once
   * what applies live beside the edge workers (the front door's sites) has.
   */
  apply(text: string): AppliedText | Promise<AppliedText>;
  /** The edge's base URL and admin token (the health answer names the config digest). */
  edgeUrl: string;
}

/** How often a check runs in the health window, how long the edge may take to follow a new text. */
const CHECK_EVERY_MS = 250;
const FOLLOW_TIMEOUT_MS = 15_000;

/** Starts following the rollout record; `started` is what the box started with. */
export async function startFleetMember(opts: FleetBoxOptions, hooks: FleetMemberHooks, started: FleetVersion): Promise<FleetMember> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${new Date().toISOString()} fleet: ${line}\n`));
  let local = opts.localText;
  let current: FleetVersion = started;
  /** A version this box rolled back for the record revision that asked for it: not tried again until the record changes. */
  let refused: { version: number; revision: number } | undefined;
  let record: { revision: number; value: RolloutRecord } | undefined;
  let stopped = false;
  let kv: FleetKv | undefined;
  let queue = Promise.resolve();
  let stopWatch: (() => void) | undefined;
  let lastStatus: BoxStatus | undefined;
  let reportedRevision: number | undefined;

  const report = async (s: Omit<BoxStatus, "v" | "box" | "at">) => {
    lastStatus = { v: 1, box: opts.box, at: Date.now(), ...s };
    await kv?.put(bucketKeys.box(opts.box), JSON.stringify(lastStatus)).catch((err: Error) => log(`reporting ${s.state} failed: ${err.message}`));
  };

  /** Applies a version's merged text and waits for the edge to run it; the text's digest. */
  const applyVersion = async (v: FleetVersion): Promise<AppliedText> => {
    const applied = await hooks.apply(mergedText(v, local));
    await edgeFollows(hooks.edgeUrl, applied.digest);
    return applied;
  };

  const reconcile = async (entry: { revision: number; value: RolloutRecord } | undefined) => {
    if (stopped || !kv) return;
    const target = targetVersion(entry?.value, opts.box);
    const rollingOut = !!entry && entry.value.stage !== "rolled-back" && target === entry.value.version;
    if (refused && entry && refused.revision === entry.revision && refused.version === target) return;
    if (target === current.version) {
      // Said again at each change of the record: the coordinator waits for reports newer than its decision.
      if (!lastStatus || lastStatus.version !== target || reportedRevision !== entry?.revision) {
        const reason = entry?.value.stage === "rolled-back" ? `version ${entry.value.version} rolled back: ${entry.value.reason}` : "";
        const since = lastStatus?.version === current.version ? lastStatus.since : undefined;
        await report({ version: current.version, target, state: "applied", reason, ...(since ? { since } : {}) });
      }
      reportedRevision = entry?.revision;
      return;
    }
    reportedRevision = entry?.revision;
    let next: FleetVersion;
    try {
      next = await readVersion(kv, target);
    } catch (err) {
      await report({ version: current.version, target, state: "refused", reason: (err as Error).message });
      return;
    }
    await report({ version: current.version, target, state: "applying", reason: "" });
    const before = current;
    let applied: AppliedText;
    try {
      applied = await hooks.apply(mergedText(next, local));
    } catch (err) {
      const reason = (err as Error).message.replace(/\n\s*/g, " ");
      log(`version ${target} refused, version ${current.version} stays: ${reason}`);
      if (entry) refused = { version: target, revision: entry.revision };
      await report({ version: current.version, target, state: "refused", reason });
      return;
    }
    let problem: string | undefined;
    let since: number | undefined;
    try {
      await edgeFollows(hooks.edgeUrl, applied.digest);
      since = Date.now();
    } catch (err) {
      problem = (err as Error).message;
    }
    if (!problem && rollingOut && entry) {
      await report({ version: target, target, state: "checking", reason: `health window of ${entry.value.window_ms} ms`, since });
      problem = await healthWindow(hooks.edgeUrl, applied, entry.value);
    }
    if (problem) {
      log(`version ${target}: ${problem}; going back to version ${before.version}`);
      if (entry) refused = { version: target, revision: entry.revision };
      try {
        await applyVersion(before);
      } catch (err) {
        log(`going back to version ${before.version} failed: ${(err as Error).message}`);
      }
      current = before;
      await report({ version: before.version, target, state: "rolled-back", reason: problem });
      return;
    }
    current = next;
    writeCached(opts.statePath, next);
    log(`version ${target} applied${applied.later.length ? `; ${applied.later.join(", ")} changed and apply at the next restart` : ""}`);
    const why = [
      ...(entry?.value.stage === "rolled-back" ? [`version ${entry.value.version} rolled back: ${entry.value.reason}`] : []),
      ...(applied.later.length ? [`${applied.later.join(", ")} apply at the next restart`] : []),
    ];
    await report({ version: target, target, state: "applied", reason: why.join("; "), since });
  };

  const enqueue = (entry: { revision: number; value: RolloutRecord } | undefined) => {
    queue = queue.then(() => reconcile(entry)).catch((err: Error) => log(`applying the rollout failed: ${err.message}`));
  };

  let closeOnStop: (() => Promise<unknown>) | undefined;
  // Connect in the background: the box serves what it started with while NATS is away.
  void (async () => {
    const nc = await connectForever(opts.cfg, `parrot-fleet ${opts.box}`);
    if (stopped) return void (await nc.close());
    await retryOpening(
      async () => {
        kv = await FleetKv.open(nc, opts.cfg);
        stopWatch = await kv.watch(bucketKeys.rollout, (e: KvEntry) => {
          try {
            record = { revision: e.revision, value: parseRecord(RolloutSchema, "rollout", e.value) };
            enqueue(record);
          } catch (err) {
            log((err as Error).message);
          }
        });
        // No record yet (nothing pushed): say what this box runs.
        if (!(await kv.get(bucketKeys.rollout))) enqueue(undefined);
      },
      () => stopped,
      (err) => log(`opening the fleet's bucket failed: ${err.message} (retrying)`),
    );
    if (stopped) await nc.close().catch(() => undefined);
    else closeOnStop = () => nc.close().catch(() => undefined);
  })().catch((err: Error) => log(`fleet: ${err.message}`));

  return {
    get running() {
      return current.version;
    },
    setLocal(text) {
      local = text;
      queue = queue
        .then(async () => {
          const applied = await applyVersion(current);
          log(`own file reloaded with version ${current.version}${applied.later.length ? `; ${applied.later.join(", ")} changed and apply at the next restart` : ""}`);
        })
        .catch((err: Error) => log(`reload refused, the running configuration stays: ${err.message.replace(/\n\s*/g, " ")}`));
    },
    async stop() {
      stopped = true;
      stopWatch?.();
      await queue;
      await closeOnStop?.();
    },
  };
}

/** Waits until the edge's health answer names `digest` (its workers read the new text within a second). */
async function edgeFollows(edgeUrl: string, digest: string): Promise<void> {
  const deadline = Date.now() + FOLLOW_TIMEOUT_MS;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(new URL(HEALTH_PATH, loopback(edgeUrl)), { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      last = `${res.status}, ${CONFIG_DIGEST_HEADER} ${res.headers.get(CONFIG_DIGEST_HEADER) ?? "absent"}`;
      if (res.headers.get(CONFIG_DIGEST_HEADER) === digest) return;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the edge did not take the new configuration within ${FOLLOW_TIMEOUT_MS} ms (last health answer: ${last})`);
}

/** The window's checks until it passes (undefined) or fails (the reason). */
async function healthWindow(edgeUrl: string, applied: AppliedText, record: RolloutRecord): Promise<string | undefined> {
  const window = new HealthWindow(Date.now(), record.window_ms);
  for (;;) {
    const problem = await checkOnce(edgeUrl, applied, record);
    const verdict = window.record(problem, Date.now());
    if (verdict.verdict === "fail") return `health regressed: ${verdict.reason}`;
    if (verdict.verdict === "pass") return undefined;
    await new Promise((r) => setTimeout(r, CHECK_EVERY_MS));
  }
}

/** One check: the edge answers its health with the new digest (or says it is draining), and every origin answers. */
async function checkOnce(edgeUrl: string, applied: AppliedText, record: RolloutRecord): Promise<string | undefined> {
  try {
    const res = await fetch(new URL(HEALTH_PATH, loopback(edgeUrl)), { signal: AbortSignal.timeout(record.probe_timeout_ms) });
    const text = await res.text();
    if (res.status !== 200 && !text.startsWith("draining")) return `the edge's health answers ${res.status} ${text.trim().slice(0, 120)}`;
    if (res.headers.get(CONFIG_DIGEST_HEADER) !== applied.digest) return "the edge no longer runs the new configuration";
  } catch (err) {
    return `the edge's health does not answer: ${(err as Error).message}`;
  }
  const answers = await Promise.all(
    applied.origins.map(async (origin) => {
      try {
        const res = await fetch(new URL(record.probe_path, origin), { signal: AbortSignal.timeout(record.probe_timeout_ms), redirect: "manual" });
        await res.body?.cancel();
        return res.status < 500 ? undefined : `origin ${origin} answers ${res.status}`;
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        return `origin ${origin} does not answer (${cause?.code ?? cause?.message ?? (err as Error).message})`;
      }
    }),
  );
  return answers.find((a) => a !== undefined);
}

/** The edge's URL as the box itself reaches it (a wildcard listen address → loopback). */
export function loopback(edgeUrl: string): URL {
  const u = new URL(edgeUrl);
  if (u.hostname === "0.0.0.0") u.hostname = "127.0.0.1";
  if (u.hostname === "[::]") u.hostname = "[::1]";
  return u;
}

export { bucketKeys as fleetKeys, BoxStatusSchema };
