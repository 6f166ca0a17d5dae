/**
 * Which edges a client gets: pinned edges first, then the nearest by great-circle distance (edges about equally near
 * are ordered by weighted chance, which spreads load); without coordinates the client's country, then continent, then
 * the configured default set. Pure; randomness is injected.
 */

/** An edge as the director sees it. */
export interface Site {
  name: string;
  ipv4?: string;
  ipv6?: string;
  lat: number;
  lon: number;
  weight: number;
  country?: string;
  continent?: string;
  countries: string[];
  continents: string[];
}

/** What is known of the client's place; every field optional. */
export interface ClientPlace {
  lat?: number;
  lon?: number;
  country?: string;
  continent?: string;
}

export interface SelectOptions {
  count: number;
  family: 4 | 6;
  /** Edges within this fraction of the nearest one's distance are equally near. */
  tieMargin: number;
  /** Edge names for clients nothing else matches, in order. */
  defaults: string[];
  /** [0,1) source; Math.random in production. */
  random: () => number;
}

const EARTH_KM = 6371.0088;
const rad = (d: number) => (d * Math.PI) / 180;

/** Great-circle (haversine) distance in km. */
export function distanceKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const a =
    Math.sin(rad(lat2 - lat1) / 2) ** 2 + Math.cos(rad(lat1)) * Math.cos(rad(lat2)) * Math.sin(rad(lon2 - lon1) / 2) ** 2;
  return 2 * EARTH_KM * Math.asin(Math.min(1, Math.sqrt(a)));
}

/** Orders sites by weighted chance (Efraimidis–Spirakis keys): heavier sites tend to come first. */
export function weightedOrder<T extends { weight: number }>(sites: T[], random: () => number): T[] {
  return sites
    .map((s) => ({ s, key: Math.log(Math.max(random(), 1e-12)) / s.weight }))
    .sort((a, b) => b.key - a.key)
    .map((x) => x.s);
}

/** Sorts by distance from (lat, lon); runs of about equally near sites are ordered by weighted chance. */
export function byDistance(sites: Site[], lat: number, lon: number, tieMargin: number, random: () => number): Site[] {
  const measured = sites
    .map((s) => ({ s, d: distanceKm(lat, lon, s.lat, s.lon), weight: s.weight }))
    .sort((a, b) => a.d - b.d);
  const out: Site[] = [];
  for (let i = 0; i < measured.length; ) {
    const limit = measured[i].d * (1 + tieMargin) + 1; // +1 km: co-located edges tie
    let j = i;
    while (j < measured.length && measured[j].d <= limit) j++;
    const group = measured.slice(i, j);
    out.push(...(group.length > 1 ? weightedOrder(group, random) : group).map((x) => x.s));
    i = j;
  }
  return out;
}

/** The edges for one answer, best first; at most `count`, never a site without an address of the family. */
export function selectEdges(edges: Site[], place: ClientPlace | null, opts: SelectOptions): Site[] {
  const eligible = edges.filter((e) => e.weight > 0 && (opts.family === 4 ? e.ipv4 : e.ipv6));
  if (eligible.length === 0) return [];
  const p = place ?? {};
  const hasCoords = p.lat !== undefined && p.lon !== undefined;
  const order = (sites: Site[]) =>
    hasCoords ? byDistance(sites, p.lat!, p.lon!, opts.tieMargin, opts.random) : weightedOrder(sites, opts.random);

  const tiers: Site[][] = [];
  // Pinning: the operator's choice for this country (else continent) comes first.
  let pinned = p.country ? eligible.filter((e) => e.countries.includes(p.country!)) : [];
  if (pinned.length === 0 && p.continent) pinned = eligible.filter((e) => e.continents.includes(p.continent!));
  tiers.push(order(pinned));
  if (hasCoords) {
    tiers.push(order(eligible));
  } else {
    if (p.country) tiers.push(weightedOrder(eligible.filter((e) => e.country === p.country), opts.random));
    if (p.continent) tiers.push(weightedOrder(eligible.filter((e) => e.continent === p.continent), opts.random));
    tiers.push(opts.defaults.flatMap((name) => eligible.filter((e) => e.name === name)));
    tiers.push(weightedOrder(eligible, opts.random));
  }
  const seen = new Set<Site>();
  const out: Site[] = [];
  for (const tier of tiers) {
    for (const s of tier) {
      if (out.length >= opts.count) return out;
      if (!seen.has(s)) {
        seen.add(s);
        out.push(s);
      }
    }
  }
  return out;
}
