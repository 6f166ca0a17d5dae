/**
 * Whether this box should announce its anycast prefixes, and whether it does: pure state, fed with health checks
 * of the box's own service and with what the BGP speaker reports. Health uses the DNS nodes' hysteresis
 * (src/health/health.ts: down after `downAfter` failed checks, up after `upAfter` good ones, draining at once), except
 * that a starting box begins "down": it earns its traffic with `upAfter` good checks instead of trusting one.
 */
import { afterProbe, type EdgeHealth, type HealthSettings, type ProbeResult } from "../health/health.ts";

export type Announcement = "announced" | "withdrawn";

export interface AnnouncerState {
  /** The box's own service, as its checks saw it. */
  health: EdgeHealth;
  /** A planned stop began: withdrawn for good, whatever the checks say. */
  stopping: boolean;
  /** Whether the routes should be in the speaker now, and why. */
  want: boolean;
  reason: string;
  /** What the network sees: the routes are enabled in the speaker and at least one BGP session is Established. */
  announced: Announcement;
  /** When `announced` last changed (ms), and how many times it has (each flap counts twice). */
  since: number;
  changes: number;
}

/** What the speaker reports: whether the routes are enabled, and how many sessions are Established. */
export interface SpeakerView {
  routesEnabled: boolean;
  established: number;
}

/** A starting box: nothing announced, the service presumed down until `upAfter` good checks. */
export function initialAnnouncer(now: number): AnnouncerState {
  return {
    health: { state: "down", streak: 0, since: now, drained: false },
    stopping: false,
    want: false,
    reason: "starting: waiting for good health checks",
    announced: "withdrawn",
    since: now,
    changes: 0,
  };
}

/** The state after one health check of the service. */
export function afterCheck(s: AnnouncerState, result: ProbeResult, settings: HealthSettings, now: number): AnnouncerState {
  const health = afterProbe(s.health, result, settings, now);
  return { ...s, health, ...wanted(s.stopping, health, settings, s.reason) };
}

/** A planned stop (SIGTERM, shutdown): withdraw now and never announce again. */
export function afterStop(s: AnnouncerState): AnnouncerState {
  return { ...s, stopping: true, want: false, reason: "stopping: withdrawn before the service stops" };
}

/** The state after the speaker reported what it is doing. */
export function afterSpeaker(s: AnnouncerState, view: SpeakerView, now: number): AnnouncerState {
  const announced: Announcement = view.routesEnabled && view.established > 0 ? "announced" : "withdrawn";
  if (announced === s.announced) return s;
  return { ...s, announced, since: now, changes: s.changes + 1 };
}

function wanted(stopping: boolean, health: EdgeHealth, settings: HealthSettings, previous: string): { want: boolean; reason: string } {
  if (stopping) return { want: false, reason: previous };
  const last = health.lastProbe;
  switch (health.state) {
    case "up":
      return { want: true, reason: last?.ok === false ? `service failing (${health.streak} of ${settings.downAfter}: ${last.detail})` : "service healthy" };
    case "draining":
      return { want: false, reason: "service draining" };
    default:
      return { want: false, reason: last?.ok ? `service recovering (${health.streak} of ${settings.upAfter} good checks)` : `service down${last ? ` (${last.detail})` : ""}` };
  }
}
