/**
 * Which edges have applied a control message, from their presence reports (pure). An edge is known when the config
 * lists it in `[[edges]]` or it has reported within the presence stream's retention; it has applied sequence N of
 * the current stream when its last report says so (boxes apply the stream in order).
 */
import type { PresenceReport } from "./messages.ts";

export interface PendingEdge {
  edge: string;
  /** Why, for an operator: never reported, stopped, behind, silent. */
  detail: string;
}

export interface AppliedSummary {
  applied: string[];
  pending: PendingEdge[];
}

/** Applied and pending edges for sequence `seq` of stream `stream` (only `targets` when given). */
export function summarize(
  reports: ReadonlyMap<string, PresenceReport>,
  configured: readonly string[],
  stream: string,
  seq: number,
  now: number,
  targets?: readonly string[],
): AppliedSummary {
  const names = new Set([...configured, ...reports.keys()]);
  const wanted = [...names].filter((n) => !targets || targets.includes(n)).sort();
  const applied: string[] = [];
  const pending: PendingEdge[] = [];
  for (const edge of wanted) {
    const r = reports.get(edge);
    if (r && r.stream === stream && r.seq >= seq) applied.push(edge);
    else pending.push({ edge, detail: describe(r, stream, now) });
  }
  return { applied, pending };
}

function describe(r: PresenceReport | undefined, stream: string, now: number): string {
  if (!r) return "has never reported to the control plane";
  const ago = `${Math.max(0, Math.round((now - r.at) / 1000))} s ago`;
  const where = r.stream === stream ? `applied up to ${r.seq}` : "on an older control stream";
  if (r.state === "stopped") return `stopped ${ago} (${where})`;
  return `${r.caughtUp ? "" : "catching up, "}${where}, last report ${ago}`;
}

/**
 * Whether an edge is known not to apply anything soon, so a call need not wait its report window for it: it never
 * reported, it stopped, or it has been silent for `silentMs` (its agent cannot reach the control plane).
 */
export function knownDown(r: PresenceReport | undefined, now: number, silentMs: number): boolean {
  return !r || r.state === "stopped" || now - r.at > silentMs;
}

/**
 * What a box's last heartbeat said, for the DNS node's status page: its health (ok, draining, …), its anycast
 * announcement when it has one, how long ago; undefined when it never reported.
 */
export function describeHeartbeat(r: PresenceReport | undefined, now: number): string | undefined {
  if (!r) return undefined;
  const ago = `${(Math.max(0, now - r.at) / 1000).toFixed(1)} s ago`;
  if (r.state === "stopped") return `stopped ${ago}`;
  return [r.health, ...(r.anycast ? [r.anycast] : []), ago].join(", ");
}

/**
 * Why a box counts as down by its heartbeats (its agent's presence reports), for a DNS node that hears the control
 * plane: it said it stopped, or it has been silent for `silentMs`. Undefined when its heartbeats are fine, when it
 * never reported (a box outside the control plane is judged by probes alone), or when the node itself has not heard
 * the control plane for `silentMs` without a break (`connectedSince`): a node cut off from NATS, or just connected,
 * cannot tell a silent box from its own deafness, so its probes alone decide.
 */
export function heartbeatProblem(r: PresenceReport | undefined, connectedSince: number | undefined, now: number, silentMs: number): string | undefined {
  if (!r || connectedSince === undefined || now - connectedSince < silentMs) return undefined;
  if (r.state === "stopped") return `its agent reported it stopped ${Math.max(0, Math.round((now - r.at) / 1000))} s ago (control plane)`;
  if (now - r.at > silentMs) return `no heartbeat for ${((now - r.at) / 1000).toFixed(1)} s (control plane)`;
  return undefined;
}
