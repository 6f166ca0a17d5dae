/**
 * Whether an edge box may trust its cache (pure). The agent asks the control stream where it ends, every
 * CHECK_INTERVAL_MS; once the box has applied up to that sequence, it was current at the moment the question was
 * sent (`confirmedAt`). The box trusts its stored entries until `confirmedAt + lease_ms`; after that it cannot know
 * of purges made meanwhile, and (by default) revalidates every stored entry until it is confirmed current again.
 *
 *   current   confirmed within lease_ms
 *   lagging   the control plane answers, but the box has not applied up to where the stream ended (by `lag`)
 *   cut-off   no answer from the control plane since `lastContact` (a dead or hung server, a partition, an outage)
 */
export type LeaseState = "current" | "lagging" | "cut-off";

export interface LeaseView {
  state: LeaseState;
  /** ms (wall clock): stored entries are trusted until then. 0: never confirmed. */
  trustedUntil: number;
  /** ms: when the box was last confirmed current (0: never). */
  confirmedAt: number;
  /** ms: the last answer from the control plane (0: never). */
  lastContact: number;
  /** Messages stored on the stream and not yet applied here, as of the last answer. */
  lag: number;
}

export class Lease {
  private confirmedAt = 0;
  private lastContact = 0;
  private lag = 0;
  /** An answered check waiting for the box to apply up to `target`: then it was current at `at`. */
  private waiting: { at: number; target: number } | undefined;

  private readonly leaseMs: number;

  constructor(leaseMs: number) {
    this.leaseMs = leaseMs;
  }

  /** A check sent at `at` was answered: the stream then ended at `lastSeq`; the box has applied up to `applied`. */
  answered(at: number, lastSeq: number, applied: number): void {
    this.lastContact = Math.max(this.lastContact, at);
    // An older question still waiting is kept unless this one asks no more of the box: it confirms sooner under load.
    if (!this.waiting || lastSeq <= this.waiting.target) this.waiting = { at, target: lastSeq };
    this.applied(applied);
  }

  /** The box has applied up to `seq`. */
  applied(seq: number): void {
    const w = this.waiting;
    if (w) {
      this.lag = Math.max(0, w.target - seq);
      if (seq >= w.target) {
        this.confirmedAt = Math.max(this.confirmedAt, w.at);
        this.waiting = undefined;
      }
    }
  }

  view(now: number): LeaseView {
    const trustedUntil = this.confirmedAt ? this.confirmedAt + this.leaseMs : 0;
    const state: LeaseState = now <= trustedUntil ? "current" : this.lastContact && now - this.lastContact <= this.leaseMs ? "lagging" : "cut-off";
    return { state, trustedUntil, confirmedAt: this.confirmedAt, lastContact: this.lastContact, lag: this.lag };
  }
}

/** A stream leader confirms a box current only if it heard a quorum of the stream's members within this (3 Raft heartbeats). */
export const LEADER_HEARD_WITHIN_MS = 3_000;

/** What a clustered stream's leader says of the stream's other members (StreamInfo.cluster; `active` in ns since heard). */
export interface StreamCluster {
  leader?: string;
  replicas?: { name: string; active: number; offline?: boolean }[];
}

/**
 * Whether a stream's answer can confirm a box current: in a cluster, only a leader that has heard a majority of the
 * stream's members (itself included) within `heardWithinMs`. A leader cut off from the others with a box of its
 * region keeps leading, and answering that box, until Raft's lost-quorum interval (10 s) makes it step down, while
 * the other members elect a new leader and store purges it never sees (measured in the world: a partitioned region
 * served a purged URL as a HIT). Undefined when the answer counts; else why it does not.
 */
export function unconfirmedLeader(cluster: StreamCluster | undefined, members: number, heardWithinMs: number): string | undefined {
  if (members <= 1 || !cluster) return undefined;
  if (!cluster.leader) return "the control stream has no leader";
  const heard = 1 + (cluster.replicas ?? []).filter((r) => !r.offline && r.active > 0 && r.active < heardWithinMs * 1e6).length;
  const quorum = Math.floor(members / 2) + 1;
  if (heard >= quorum) return undefined;
  return `the control stream's leader ${cluster.leader} has heard ${heard} of its ${members} members within ${heardWithinMs} ms (a quorum is ${quorum}): it may have been replaced`;
}
