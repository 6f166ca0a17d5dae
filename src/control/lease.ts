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
