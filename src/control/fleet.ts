/**
 * The fleet's configuration rollout, its pure part: the records kept in the JetStream key-value bucket
 * `<namespace>_fleet`, which version a box runs at each stage, how the coordinator (`npm run fleet -- push`) judges
 * the canaries, and how a box judges its own health window after it applied a version.
 *
 *   config.<N>   ConfigVersion  the shared cdn.toml text of version N (written once)
 *   rollout      RolloutRecord  the version being rolled out, the one before it, the stage, the canaries
 *   box.<name>   BoxStatus      what a box runs and why (applied, refused with the reason, rolled back)
 *
 * Decisions: every box computes its own target from the rollout record (`targetVersion`); only the coordinator moves
 * the record from "canary" to "all" or "rolled-back", with a compare-and-set on its revision (one writer per
 * decision); a canary whose health regresses goes back by itself at once, without waiting for the coordinator.
 */
import { z } from "zod";

export const FLEET_RECORD_VERSION = 1;

const boxName = z.string().regex(/^[A-Za-z0-9._-]+$/).max(200);

export const ConfigVersionSchema = z
  .object({
    v: z.literal(1),
    version: z.number().int().min(1),
    text: z.string(),
    digest: z.string(),
    at: z.number(),
    by: z.string(),
  })
  .strict();
export type ConfigVersion = z.infer<typeof ConfigVersionSchema>;

export const RolloutSchema = z
  .object({
    v: z.literal(1),
    /** The version rolled out (or, when "rolled-back", the one that was refused). */
    version: z.number().int().min(1),
    /** What the fleet ran before: the version every box goes back to (0: each box's own file). */
    previous: z.number().int().min(0),
    stage: z.enum(["canary", "all", "rolled-back"]),
    canaries: z.array(boxName),
    /** How long a box watches its health after it applied a version before it calls it good. */
    window_ms: z.number().int().min(0),
    /** The path every origin of the new config is asked for during the window (any status below 500 is an answer). */
    probe_path: z.string().startsWith("/"),
    probe_timeout_ms: z.number().int().min(1),
    /** Why the stage is what it is (for `fleet status`). */
    reason: z.string(),
    at: z.number(),
    by: z.string(),
  })
  .strict();
export type RolloutRecord = z.infer<typeof RolloutSchema>;

export const BOX_STATES = ["applying", "checking", "applied", "refused", "rolled-back"] as const;
export const BoxStatusSchema = z
  .object({
    v: z.literal(1),
    box: boxName,
    /** The fleet version the box runs (0: its own file). */
    version: z.number().int().min(0),
    /** The version the rollout record asks of it. */
    target: z.number().int().min(0),
    state: z.enum(BOX_STATES),
    /** Why (refused: the config problem; rolled back: the health check that failed; applied: restart-only changes). */
    reason: z.string(),
    /** When the edge began answering with `version` (its health named the new text's digest). */
    since: z.number().optional(),
    at: z.number(),
  })
  .strict();
export type BoxStatus = z.infer<typeof BoxStatusSchema>;

/** Parses a stored record; a malformed one is an error naming the key (it changes nothing). */
export function parseRecord<T>(schema: z.ZodType<T>, key: string, data: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(data);
  } catch {
    throw new Error(`fleet: ${key} is not JSON`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new Error(`fleet: ${key} is malformed: ${r.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ")}`);
  return r.data;
}

/** What a staged rollout is: the configuration's (RolloutRecord) and a site function's (fleet-functions.ts). */
export type Staged = Pick<RolloutRecord, "version" | "previous" | "stage" | "canaries">;

/** The version a box runs at this stage of the rollout (0: no version was ever pushed: its own file). */
export function targetVersion(record: Staged | undefined, box: string): number {
  if (!record) return 0;
  if (record.stage === "all") return record.version;
  if (record.stage === "canary") return record.canaries.includes(box) ? record.version : record.previous;
  return record.previous;
}

/**
 * The canaries: the boxes named (each must be one the fleet knows), or the first ceil(fraction × n) of the live boxes
 * in name order (at least one).
 */
export function pickCanaries(live: readonly string[], known: readonly string[], opts: { names?: string[]; fraction?: number }): string[] {
  if (opts.names?.length) {
    const unknown = opts.names.filter((n) => !known.includes(n));
    if (unknown.length) throw new Error(`--canary: no box named ${unknown.join(", ")} (known: ${known.join(", ") || "none"})`);
    return [...new Set(opts.names)].sort();
  }
  const sorted = [...new Set(live)].sort();
  if (!sorted.length) throw new Error("no box has reported to the fleet: name the canaries (--canary NAME)");
  const fraction = opts.fraction ?? 0;
  const count = Math.min(sorted.length, Math.max(1, Math.ceil(fraction * sorted.length)));
  return sorted.slice(0, count);
}

export type CanaryDecision = { decision: "wait"; waiting: string[] } | { decision: "promote" } | { decision: "rollback"; reason: string };

/**
 * The coordinator's judgement of the canary stage: roll back as soon as a canary refused the version or rolled it
 * back (or has not confirmed it by `deadline`); promote once every canary applied it and kept its health through
 * the window.
 */
export function judgeCanaries(
  record: Pick<RolloutRecord, "version" | "canaries" | "at">,
  statuses: ReadonlyMap<string, Pick<BoxStatus, "target" | "at" | "state" | "reason" | "version">>,
  now: number,
  deadline: number,
): CanaryDecision {
  const waiting: string[] = [];
  for (const box of record.canaries) {
    const s = statuses.get(box);
    const about = s && s.target === record.version && s.at >= record.at;
    if (about && (s.state === "refused" || s.state === "rolled-back")) {
      return { decision: "rollback", reason: `canary ${box} ${s.state === "refused" ? "refused" : "rolled back"} version ${record.version}: ${s.reason}` };
    }
    if (about && s.state === "applied" && s.version === record.version) continue;
    waiting.push(box);
  }
  if (!waiting.length) return { decision: "promote" };
  if (now > deadline) {
    const detail = waiting.map((b) => `${b} (${describeStatus(statuses.get(b))})`).join(", ");
    return { decision: "rollback", reason: `canary ${detail} did not confirm version ${record.version} in time` };
  }
  return { decision: "wait", waiting };
}

/** One line of what a box last said, for an operator. */
export function describeStatus(s: Pick<BoxStatus, "at" | "version" | "target" | "state" | "reason"> | undefined, now = Date.now()): string {
  if (!s) return "never reported";
  const ago = `${Math.max(0, Math.round((now - s.at) / 1000))} s ago`;
  const runs = s.version ? `runs version ${s.version}` : "runs its own file";
  const why = s.reason ? `: ${s.reason}` : "";
  return `${s.state} (${runs}, asked for ${s.target || "its own file"})${why}, ${ago}`;
}

/**
 * A box's health window after it applied a version: every check must pass; two failures in a row are a regression
 * (one may be the machine's load); the window passes once it has lasted `windowMs` with at least one check passed
 * and the last one good. Pure: the caller feeds it its checks and clock.
 */
export class HealthWindow {
  private readonly started: number;
  private readonly windowMs: number;
  private failures = 0;
  private passes = 0;
  private lastFailure = "";

  constructor(now: number, windowMs: number) {
    this.started = now;
    this.windowMs = windowMs;
  }

  /** Records one check; the window's verdict so far. */
  record(problem: string | undefined, now: number): { verdict: "pending" | "pass" } | { verdict: "fail"; reason: string } {
    if (problem) {
      this.failures++;
      this.lastFailure = problem;
      if (this.failures >= 2) return { verdict: "fail", reason: problem };
      return { verdict: "pending" };
    }
    this.failures = 0;
    this.passes++;
    return now - this.started >= this.windowMs && this.passes > 0 ? { verdict: "pass" } : { verdict: "pending" };
  }

  get last(): string {
    return this.lastFailure;
  }
}
