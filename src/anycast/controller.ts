/**
 * The announcer's loop, one round at a time: check the service, decide (announcer.ts), make the speaker match
 * (enable or disable the static routes), read back what it does, log every change, tell the edge. Everything it
 * touches is passed in (check, speaker, report, clock), so unit tests drive it with fakes and a fake clock.
 *
 * Watchdog: a speaker that fails `controlFailureLimit` control calls in a row is restarted (killed: its BGP sessions
 * drop, so routers withdraw at once), and comes back with the routes disabled until the next round enables them.
 */
import type { HealthSettings, ProbeResult } from "../health/health.ts";
import { Registry } from "../metrics/registry.ts";
import { afterCheck, afterSpeaker, afterStop, initialAnnouncer, type Announcement, type AnnouncerState } from "./announcer.ts";

export interface BgpSession {
  /** The neighbor's name in cdn.toml. */
  neighbor: string;
  /** Established, Active, Connect, Idle, OpenSent, OpenConfirm, Passive, Down … */
  state: string;
  /** The speaker's words: state and last error. */
  info: string;
}

export interface SpeakerStatus {
  /** Every static protocol of the prefixes is up (enabled). */
  routesEnabled: boolean;
  sessions: BgpSession[];
}

/** What the controller needs from a BGP speaker (BIRD through birdc, or a fake). */
export interface Speaker {
  status(): Promise<SpeakerStatus>;
  setRoutes(enabled: boolean): Promise<void>;
  /** Kill and start again (routes disabled until set). */
  restart(reason: string): Promise<void>;
}

export interface ControllerOptions {
  check: () => Promise<ProbeResult>;
  speaker: Speaker;
  /** Tells the service the announcement state (the edge's health header); rejected → tried again next round. */
  report?: (state: Announcement) => Promise<void>;
  settings: HealthSettings;
  now?: () => number;
  /** One structured event per change (announcement, session state, watchdog). */
  log?: (event: Record<string, unknown>) => void;
  controlFailureLimit?: number;
}

export interface AnycastStatus {
  announced: Announcement;
  want: boolean;
  reason: string;
  health: AnnouncerState["health"];
  since: number;
  changes: number;
  stopping: boolean;
  sessions: BgpSession[];
  routesEnabled: boolean;
  checks: Record<ProbeResult["kind"], number>;
  speakerRestarts: number;
  controlErrors: number;
}

export class AnycastController {
  private state: AnnouncerState;
  private readonly opts: ControllerOptions;
  private readonly now: () => number;
  private speakerStatus: SpeakerStatus = { routesEnabled: false, sessions: [] };
  private failuresInARow = 0;
  private reported: Announcement | undefined;
  private reporting: Promise<void> | undefined;
  private readonly checks: Record<ProbeResult["kind"], number> = { ok: 0, draining: 0, failed: 0 };
  private speakerRestarts = 0;
  private controlErrors = 0;
  private running: Promise<void> | undefined;

  constructor(opts: ControllerOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    this.state = initialAnnouncer(this.now());
  }

  /** One round: check, decide, apply, read back, report. Never two at once: a call during one gets that one. */
  round(): Promise<void> {
    return this.running ?? this.exclusive(() => this.runRound());
  }

  /**
   * Planned stop: withdraw now (and for good: no later round announces). Resolves once the speaker confirms the
   * routes are disabled, or after it was killed when it could not confirm (a dead speaker announces nothing).
   */
  withdraw(): Promise<void> {
    this.state = afterStop(this.state);
    this.opts.log?.({ event: "anycast_stopping", reason: this.state.reason });
    return this.exclusive(async () => {
      await this.sync();
      if (this.speakerStatus.routesEnabled) await this.restartSpeaker("could not withdraw the routes");
    });
  }

  /** Runs `fn` after whatever runs now; talks to the speaker one at a time. */
  private exclusive(fn: () => Promise<void>): Promise<void> {
    const run: Promise<void> = (this.running ?? Promise.resolve()).then(fn, fn).finally(() => {
      if (this.running === run) this.running = undefined;
    });
    this.running = run;
    return run;
  }

  status(): AnycastStatus {
    const s = this.state;
    return {
      announced: s.announced,
      want: s.want,
      reason: s.reason,
      health: s.health,
      since: s.since,
      changes: s.changes,
      stopping: s.stopping,
      sessions: this.speakerStatus.sessions,
      routesEnabled: this.speakerStatus.routesEnabled,
      checks: { ...this.checks },
      speakerRestarts: this.speakerRestarts,
      controlErrors: this.controlErrors,
    };
  }

  /** The announcer's metrics in Prometheus text format. */
  metrics(): string {
    const r = new Registry();
    const s = this.status();
    r.set("parrot_anycast_announced", "1 while the prefixes are announced (routes enabled, a BGP session Established)", {}, s.announced === "announced" ? 1 : 0);
    r.set("parrot_anycast_wanted", "1 while the announcer wants the prefixes announced (service healthy, no stop)", {}, s.want ? 1 : 0);
    for (const state of ["up", "down", "draining"]) r.set("parrot_anycast_health", "The service's health as the checks see it", { state }, s.health.state === state ? 1 : 0);
    r.inc("parrot_anycast_changes_total", "Changes between announced and withdrawn (a flap is two)", {}, s.changes);
    r.set("parrot_anycast_last_change_timestamp_seconds", "When the announcement state last changed (Unix time)", {}, s.since / 1000);
    for (const [result, n] of Object.entries(s.checks)) r.inc("parrot_anycast_checks_total", "Health checks of the service by result", { result }, n);
    for (const x of s.sessions) {
      r.set("parrot_anycast_bgp_session_up", "1 while the BGP session is Established", { neighbor: x.neighbor }, x.state === "Established" ? 1 : 0);
      r.set("parrot_anycast_bgp_session_state", "The BGP session's state (1 for the current one)", { neighbor: x.neighbor, state: x.state }, 1);
    }
    r.inc("parrot_anycast_speaker_restarts_total", "BGP speaker restarts (crashes and watchdog kills)", {}, s.speakerRestarts);
    r.inc("parrot_anycast_control_errors_total", "Failed control calls to the speaker", {}, s.controlErrors);
    return r.expose();
  }

  /** The speaker was restarted from outside (it crashed): its routes start disabled. */
  speakerRestarted(): void {
    this.speakerRestarts++;
    this.speakerStatus = { ...this.speakerStatus, routesEnabled: false };
  }

  private async runRound(): Promise<void> {
    const result = await this.opts.check().catch((err: Error): ProbeResult => ({ kind: "failed", detail: err.message }));
    this.checks[result.kind]++;
    const before = this.state;
    this.state = afterCheck(this.state, result, this.opts.settings, this.now());
    if (before.want !== this.state.want || before.health.state !== this.state.health.state) {
      this.opts.log?.({ event: "anycast_health", health: this.state.health.state, want: this.state.want, reason: this.state.reason });
    }
    await this.sync();
  }

  /** Makes the speaker match `want`, reads back its status, logs and reports changes. */
  private async sync(): Promise<void> {
    try {
      let status = await this.opts.speaker.status();
      if (status.routesEnabled !== this.state.want) {
        await this.opts.speaker.setRoutes(this.state.want);
        status = await this.opts.speaker.status();
      }
      this.failuresInARow = 0;
      this.observe(status);
    } catch (err) {
      this.controlErrors++;
      this.failuresInARow++;
      this.opts.log?.({ event: "anycast_control_error", error: (err as Error).message, in_a_row: this.failuresInARow });
      if (this.failuresInARow >= (this.opts.controlFailureLimit ?? 3)) await this.restartSpeaker(`${this.failuresInARow} control calls failed in a row`);
    }
    this.report();
  }

  private observe(status: SpeakerStatus): void {
    const previous = new Map(this.speakerStatus.sessions.map((x) => [x.neighbor, x]));
    for (const x of status.sessions) {
      const p = previous.get(x.neighbor);
      if (!p || p.state !== x.state) this.opts.log?.({ event: "bgp_session", neighbor: x.neighbor, state: x.state, info: x.info, was: p?.state ?? null });
    }
    this.speakerStatus = status;
    const established = status.sessions.filter((x) => x.state === "Established").length;
    const before = this.state.announced;
    this.state = afterSpeaker(this.state, { routesEnabled: status.routesEnabled, established }, this.now());
    if (before !== this.state.announced) {
      this.opts.log?.({ event: "anycast", state: this.state.announced, reason: this.state.reason, sessions_established: established, changes: this.state.changes });
    }
  }

  private async restartSpeaker(reason: string): Promise<void> {
    this.failuresInARow = 0;
    this.speakerRestarts++;
    this.opts.log?.({ event: "anycast_watchdog", action: "restart speaker", reason });
    try {
      await this.opts.speaker.restart(reason);
    } catch (err) {
      this.opts.log?.({ event: "anycast_control_error", error: `restart failed: ${(err as Error).message}` });
    }
    // A killed speaker has no sessions: the network sees a withdrawal whatever happens next.
    this.observe({ routesEnabled: false, sessions: this.speakerStatus.sessions.map((x) => ({ ...x, state: "Down", info: reason })) });
  }

  /**
   * Tells the service the announcement state when it changed, in the background: a service that hangs (the very
   * failure the checks are there to see) must not hold up the rounds. One report at a time; a failed one is tried
   * again at the next round.
   */
  private report(): void {
    if (!this.opts.report || this.reporting || this.reported === this.state.announced) return;
    const state = this.state.announced;
    this.reporting = this.opts
      .report(state)
      .then(
        () => void (this.reported = state),
        (err: Error) => this.opts.log?.({ event: "anycast_report_error", state, error: err.message }),
      )
      .finally(() => (this.reporting = undefined));
  }
}
