/**
 * Edge health as a DNS node sees it, with hysteresis (as gdnsd does): an edge goes down after `downAfter` failed
 * probes in a row and comes back after `upAfter` good ones in a row. A node that starts knows nothing: every edge
 * is "unknown" until its first probe, and unknown edges count as up (a fresh node must answer, not go silent).
 * An edge that reports itself draining, or that the operator drained, leaves answers at once.
 */

export type EdgeState = "unknown" | "up" | "down" | "draining";

export interface HealthSettings {
  downAfter: number;
  upAfter: number;
}

export interface EdgeHealth {
  state: EdgeState;
  /** Probe results in a row that disagree with the state (moving towards the other state). */
  streak: number;
  /** When the state last changed (ms), and the last probe's outcome. */
  since: number;
  lastProbe?: { at: number; ok: boolean; detail: string };
  /** Drained by the operator (config or admin call), whatever the probes say. */
  drained: boolean;
  /** The edge box's anycast announcement as its last answered probe said (`cdn-anycast` header); absent: unknown. */
  anycast?: AnycastState;
  /** The edge box on the control plane as its last answered probe said (`cdn-control` header); absent: unknown. */
  control?: ControlState;
}

/** An edge box with `[control]`: confirmed current, lagging, cut off from NATS, or its agent not answering (src/edge/control-lease.ts). */
export type ControlState = "current" | "lagging" | "cut-off" | "no-agent";

/** The response header an edge box reports its control-plane state in. */
export const CONTROL_HEADER = "cdn-control";

/** The control state a header value names; undefined for anything else (or no header). */
export function parseControl(value: string | null): ControlState | undefined {
  const v = value?.trim().toLowerCase();
  return v === "current" || v === "lagging" || v === "cut-off" || v === "no-agent" ? v : undefined;
}

/** What an edge box with anycast says of its route (issue 13): announced while healthy, withdrawn otherwise. */
export type AnycastState = "announced" | "withdrawn";

/** The response header an edge box reports its announcement in. */
export const ANYCAST_HEADER = "cdn-anycast";

/** A probe's outcome: the edge answered healthy, answered that it is draining, or failed (and its anycast state). */
export type ProbeResult = ({ kind: "ok" } | { kind: "draining" } | { kind: "failed"; detail: string }) & { anycast?: AnycastState; control?: ControlState };

export function initialHealth(now: number, drained = false): EdgeHealth {
  return { state: "unknown", streak: 0, since: now, drained };
}

/** The health after one probe. */
export function afterProbe(h: EdgeHealth, r: ProbeResult, s: HealthSettings, now: number): EdgeHealth {
  const lastProbe = { at: now, ok: r.kind === "ok", detail: r.kind === "failed" ? r.detail : r.kind };
  const { anycast, control } = r;
  const to = (state: EdgeState): EdgeHealth => ({ ...h, state, streak: 0, since: state === h.state ? h.since : now, lastProbe, anycast, control });
  const stay = (streak: number): EdgeHealth => ({ ...h, streak, lastProbe, anycast, control });
  if (r.kind === "draining") return to("draining");
  const good = r.kind === "ok";
  switch (h.state) {
    case "unknown":
      // The first probe decides at once: a restarted node must not trust stale state, nor wait for N probes.
      return to(good ? "up" : "down");
    case "draining":
      return good ? to("up") : stay(h.streak);
    case "up":
      if (good) return to("up");
      return h.streak + 1 >= s.downAfter ? to("down") : stay(h.streak + 1);
    case "down":
      if (!good) return to("down");
      return h.streak + 1 >= s.upAfter ? to("up") : stay(h.streak + 1);
  }
}

/** The announcement state a header value names; undefined for anything else (or no header). */
export function parseAnycast(value: string | null): AnycastState | undefined {
  const v = value?.trim().toLowerCase();
  return v === "announced" || v === "withdrawn" ? v : undefined;
}

/** Whether an edge may be in DNS answers (before fail-open). */
export function inService(h: EdgeHealth): boolean {
  return !h.drained && (h.state === "up" || h.state === "unknown");
}

/**
 * The edges to answer from: those in service; when fewer than `minUp` are, every edge not drained by the operator
 * (fail-open, like gdnsd: answering with edges that may be down beats answering with none).
 */
export function answerable<T extends { name: string }>(
  edges: T[],
  health: (name: string) => EdgeHealth | undefined,
  minUp: number,
): { edges: T[]; failOpen: boolean } {
  const up = edges.filter((e) => {
    const h = health(e.name);
    return !h || inService(h);
  });
  if (up.length >= Math.min(minUp, edges.length) && up.length > 0) return { edges: up, failOpen: false };
  const notDrained = edges.filter((e) => !health(e.name)?.drained);
  return { edges: notDrained.length ? notDrained : edges, failOpen: true };
}
