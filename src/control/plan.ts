/**
 * The control agent's decisions, pure: where a box resumes the control stream when it starts (and whether it missed
 * messages that are gone), and how a batch of delivered messages becomes a few calls to the local edge.
 */
import type { ControlMark, PurgeRequest } from "../cache/purge.ts";
import type { ControlMessage } from "./messages.ts";

/** What the agent knows of the control stream when it starts. */
export interface StreamState {
  /** The stream's identity: its creation time (a recreated stream restarts its sequence numbers). */
  id: string;
  /** First and last sequence held (an empty stream: first = last + 1, or both 0 when new). */
  firstSeq: number;
  lastSeq: number;
}

export interface StartPlan {
  /** The first sequence to deliver to this box. */
  startSeq: number;
  /** The box may have missed purges that are gone: treat everything it stored as stale (a soft purge of all). */
  softAll: boolean;
  reason: string;
}

/**
 * Where the box resumes, from the mark its edge keeps (what it applied, surviving restarts) and the stream's state.
 * Messages older than the stream's retention are gone: a box whose mark predates them cannot know what they purged.
 */
export function planStart(mark: Pick<ControlMark, "stream" | "seq"> | undefined, stream: StreamState): StartPlan {
  const first = Math.max(stream.firstSeq, 1);
  if (!mark) {
    return first > 1
      ? { startSeq: first, softAll: true, reason: `no record of the control stream here, and messages before ${first} have expired` }
      : { startSeq: 1, softAll: false, reason: "no record of the control stream here: reading it from the start" };
  }
  if (mark.stream !== stream.id) {
    return { startSeq: first, softAll: true, reason: `the control stream was recreated (${mark.stream} → ${stream.id})` };
  }
  if (mark.seq > stream.lastSeq) {
    return { startSeq: first, softAll: true, reason: `applied up to ${mark.seq} but the stream ends at ${stream.lastSeq}` };
  }
  if (mark.seq + 1 < first) {
    return { startSeq: first, softAll: true, reason: `messages ${mark.seq + 1}–${first - 1} expired before this box read them` };
  }
  return { startSeq: mark.seq + 1, softAll: false, reason: `resuming after ${mark.seq}` };
}

/** A message as delivered: its stream sequence and the parsed message, or why it was refused. */
export interface Delivered {
  seq: number;
  message: ControlMessage | string;
}

export interface ApplyPlan {
  /** Purge calls for the local edge, soft ones first (a later hard mark then wins over a soft one on the same key). */
  purges: PurgeRequest[];
  /** The last drain state for this edge in the batch, if any. */
  drain?: boolean;
  /** The last sequence of the batch: applied once these calls succeed. */
  lastSeq: number;
  refused: { seq: number; reason: string }[];
}

/** Most items per list in one purge call (the edge's own limit). */
export const MAX_ITEMS_PER_CALL = 1000;

/** A batch of delivered messages as the calls that apply it at edge `self`. */
export function coalesce(batch: Delivered[], self: string): ApplyPlan {
  const plan: ApplyPlan = { purges: [], lastSeq: batch.length ? batch[batch.length - 1]!.seq : 0, refused: [] };
  const kinds = ["urls", "prefixes", "tags", "hosts"] as const;
  const merged = {
    soft: { all: false, urls: new Set<string>(), prefixes: new Set<string>(), tags: new Set<string>(), hosts: new Set<string>() },
    hard: { all: false, urls: new Set<string>(), prefixes: new Set<string>(), tags: new Set<string>(), hosts: new Set<string>() },
  };
  for (const { seq, message } of batch) {
    if (typeof message === "string") {
      plan.refused.push({ seq, reason: message });
      continue;
    }
    if (message.kind === "drain") {
      if (message.edge === self) plan.drain = message.draining;
      continue;
    }
    if (message.targets && !message.targets.includes(self)) continue;
    const into = message.request.soft ? merged.soft : merged.hard;
    if (message.request.all) into.all = true;
    for (const k of kinds) for (const item of message.request[k] ?? []) into[k].add(item);
  }
  for (const soft of [true, false]) {
    const m = soft ? merged.soft : merged.hard;
    const lists = kinds.map((k) => [k, [...m[k]]] as const);
    const calls = Math.max(m.all ? 1 : 0, ...lists.map(([, items]) => Math.ceil(items.length / MAX_ITEMS_PER_CALL)));
    for (let i = 0; i < calls; i++) {
      const req: PurgeRequest = soft ? { soft: true } : {};
      if (m.all && i === 0) req.all = true;
      for (const [k, items] of lists) {
        const part = items.slice(i * MAX_ITEMS_PER_CALL, (i + 1) * MAX_ITEMS_PER_CALL);
        if (part.length) req[k] = part;
      }
      plan.purges.push(req);
    }
  }
  return plan;
}

/**
 * The part of a delivered batch to apply now: the messages that continue right after `applied` without a hole
 * (redeliveries of what is applied already are dropped). `gapAt` is the sequence that arrived after a hole: a message
 * was lost in delivery (a connection died with it) or expired, so the consumer must start again after `applied`.
 */
export function contiguous<T extends { seq: number }>(batch: T[], applied: number): { run: T[]; gapAt?: number } {
  const run: T[] = [];
  let next = applied + 1;
  for (const m of batch) {
    if (m.seq < next) continue;
    if (m.seq > next) return { run, gapAt: m.seq };
    run.push(m);
    next++;
  }
  return { run };
}
