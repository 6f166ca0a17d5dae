/**
 * The box's control lease as the edge sees it: its control agent says (GET /status on the CONTROL binding) until when
 * the box is confirmed current on the control stream (src/control/lease.ts). Read at most once a second while the
 * lease holds; while it does not, at each request (concurrent ones share a read), so the first request after the
 * agent is confirmed again trusts the cache.
 * Past that, with `when_cut_off = "revalidate"`, every stored entry is stale (revalidated with the origin before it
 * is served): the box cannot know of purges made meanwhile. An agent that does not answer confirms nothing.
 */
import type { LeaseState, LeaseView } from "../control/lease.ts";

/** How old a trusted lease read may be. */
const REFRESH_MS = 1_000;
/** How long a read of the agent's status may take (requests wait for it once a second). */
const READ_TIMEOUT_MS = 1_000;

export interface ControlState {
  /** "current", "lagging", "cut-off", or "no-agent" (this box's control agent is not answering). */
  state: LeaseState | "no-agent";
  /** Whether stored entries are trusted now (else revalidated, or served at the stated risk). */
  trusted: boolean;
  /** Whether an untrusted box revalidates (`when_cut_off = "revalidate"`) or serves from cache anyway. */
  revalidating: boolean;
  lag: number;
  /** ISO times: trusted until; last confirmed current; last heard from the control plane (null: never). */
  trustedUntil: string | null;
  confirmedAt: string | null;
  lastContact: string | null;
  server: string;
  detail: string;
}

interface AgentStatus {
  lease?: LeaseView;
  server?: string;
}

const iso = (ms: number | undefined) => (ms && Number.isFinite(new Date(ms).getTime()) ? new Date(ms).toISOString() : null);

export class ControlLease {
  private lease: LeaseView | undefined;
  private server = "";
  private failure = "";
  private readStartedAt = -Infinity;
  private running: Promise<void> | undefined;
  private readonly status: () => Promise<Response>;
  private readonly revalidate: boolean;

  private readonly now: () => number;

  /** `now`: the agent's clock (the box's wall clock); a fake one in unit tests. */
  constructor(status: () => Promise<Response>, revalidate: boolean, now: () => number = Date.now) {
    this.status = status;
    this.revalidate = revalidate;
    this.now = now;
  }

  get due(): boolean {
    const now = this.now();
    return !this.trusted(now) || now - this.readStartedAt >= REFRESH_MS;
  }

  sync(): Promise<void> {
    if (this.running) return this.running;
    if (!this.due) return Promise.resolve();
    this.readStartedAt = this.now();
    const done = this.read().finally(() => {
      if (this.running === done) this.running = undefined;
    });
    this.running = done;
    return done;
  }

  private async read(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${READ_TIMEOUT_MS} ms`)), READ_TIMEOUT_MS)));
      const res = await Promise.race([this.status(), timeout]);
      if (!res.ok) throw new Error(`status ${res.status}`);
      const body = (await Promise.race([res.json(), timeout])) as AgentStatus;
      if (!body.lease || typeof body.lease.trustedUntil !== "number") throw new Error("no lease in its status");
      this.lease = body.lease;
      this.server = body.server ?? "";
      this.failure = "";
    } catch (err) {
      // The last lease read still holds until it expires: it was true when it was read.
      this.failure = (err as Error).message;
    } finally {
      clearTimeout(timer);
    }
  }

  trusted(now: number): boolean {
    return !!this.lease && now <= this.lease.trustedUntil;
  }

  /** For lookups: entries stored before this time are stale (undefined: trusted, or configured to serve anyway). */
  staleBefore(now: number): number | undefined {
    return this.revalidate && !this.trusted(now) ? now : undefined;
  }

  view(now = this.now()): ControlState {
    const l = this.lease;
    const trusted = this.trusted(now);
    // An agent's "current" read a moment before its lease ran out is not current any more.
    const state = trusted ? "current" : this.failure || !l ? "no-agent" : l.state === "current" ? "lagging" : l.state;
    const detail =
      state === "current"
        ? "current"
        : state === "lagging"
          ? `lagging by ${l!.lag} messages`
          : state === "cut-off"
            ? `cut off from the control plane since ${iso(l!.lastContact) ?? "this start"}`
            : `this box's control agent is not answering (${this.failure || "not read yet"})`;
    return {
      state,
      trusted,
      revalidating: !trusted && this.revalidate,
      lag: l?.lag ?? 0,
      trustedUntil: iso(l?.trustedUntil),
      confirmedAt: iso(l?.confirmedAt),
      lastContact: iso(l?.lastContact),
      server: this.server,
      detail,
    };
  }
}
