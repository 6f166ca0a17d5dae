/**
 * The tiered cache's topology as the DNS node's status page shows it, from what each edge box's metrics say of its
 * shields (name, URL, passive health, probes). A box in the zone's edges faces clients ("edge"); one that some edge names
 * as its shield fills others ("shield"); a box that does both is "both". Pure.
 */

/** One shield as one edge sees it: skipped until `skippedUntil` (ms since the epoch), else up. */
export interface ShieldSeen {
  name: string;
  url: string;
  skippedUntil?: number;
  /** The edge's probes of its health endpoint say it is down ([edge] shield_health). */
  probedDown?: boolean;
}

export type TierRole = "edge" | "shield" | "both";

export interface ShieldStatus {
  name: string;
  /** The URLs the edges use for it (more than one: the edges disagree). */
  urls: string[];
  role: TierRole;
  /** The edges that fill from it and see it up. */
  upAt: string[];
  /** The edges that skip it after failures, and until when. */
  skippedBy: { edge: string; until: number }[];
  /** The edges whose probes find it down (skipped until their probes find it up). */
  downAt?: string[];
}

/** Each edge's role, and every shield any edge names, with its health at each edge (in name order). */
export function tierTopology(edges: { name: string; shields?: ShieldSeen[] }[]): { roles: Map<string, TierRole>; shields: ShieldStatus[] } {
  const byName = new Map<string, ShieldStatus>();
  for (const edge of edges) {
    for (const s of edge.shields ?? []) {
      let shield = byName.get(s.name);
      if (!shield) byName.set(s.name, (shield = { name: s.name, urls: [], role: "shield", upAt: [], skippedBy: [] }));
      if (!shield.urls.includes(s.url)) shield.urls.push(s.url);
      // A box that names itself (one fleet-wide list) fills its own keys from the origin: not a health of its own.
      if (s.name === edge.name) continue;
      if (s.probedDown) (shield.downAt ??= []).push(edge.name);
      else if (s.skippedUntil === undefined) shield.upAt.push(edge.name);
      else shield.skippedBy.push({ edge: edge.name, until: s.skippedUntil });
    }
  }
  const roles = new Map<string, TierRole>(edges.map((e) => [e.name, byName.has(e.name) ? "both" : "edge"]));
  for (const [name, shield] of byName) if (roles.has(name)) shield.role = "both";
  return { roles, shields: [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) };
}
