/**
 * Which edges a client gets: pinned edges first, then the nearest by great-circle distance (edges about equally near
 * are ordered by weighted chance, which spreads load); without coordinates the client's country, then continent, then
 * the configured default set. Pure. The weighted chance is either injected (`random`) or, in production, seeded by the
 * client's network (`seed`): then each edge's draw depends only on the seed and the edge's name, so one client network
 * sees the same edges for A and AAAA and on every query, while different networks spread by weight.
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
  /** Per-client seed (see networkSeed): deterministic draws per edge. Takes precedence over `random`. */
  seed?: number;
  /** [0,1) source when no seed is given; Math.random when neither is. */
  random?: () => number;
}

/** A draw in (0, 1) for a site: `random()` in turn, or a hash of the seed and the site's name. */
type Draw = (site: { name: string }) => number;

const EARTH_KM = 6371.0088;
const rad = (d: number) => (d * Math.PI) / 180;

/** Great-circle (haversine) distance in km. */
export function distanceKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const a =
    Math.sin(rad(lat2 - lat1) / 2) ** 2 + Math.cos(rad(lat1)) * Math.cos(rad(lat2)) * Math.sin(rad(lon2 - lon1) / 2) ** 2;
  return 2 * EARTH_KM * Math.asin(Math.min(1, Math.sqrt(a)));
}

/** 32-bit FNV-1a over bytes, then a final avalanche (murmur3 fmix32). */
function hashBytes(bytes: ArrayLike<number>, h = 0x811c9dc5): number {
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return fmix32(h);
}

function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The seed for a client network: the address bytes masked to the network (e.g. a /24 or /56). */
export function networkSeed(network: Uint8Array): number {
  return hashBytes(network);
}

const nameHashes = new Map<string, number>();
function nameHash(name: string): number {
  let h = nameHashes.get(name);
  if (h === undefined) {
    h = hashBytes(new TextEncoder().encode(name));
    if (nameHashes.size < 10_000) nameHashes.set(name, h);
  }
  return h;
}

/** The draw for one site under a seed: uniform in (0, 1), independent across sites and seeds. */
export function seededDraw(seed: number, name: string): number {
  return (fmix32((seed ^ nameHash(name)) + 0x9e3779b9) + 0.5) / 4294967296;
}

function drawFor(opts: { seed?: number; random?: () => number }): Draw {
  if (opts.seed !== undefined) {
    const seed = opts.seed;
    return (s) => seededDraw(seed, s.name);
  }
  const random = opts.random ?? Math.random;
  return () => random();
}

/** Orders sites by weighted chance (Efraimidis–Spirakis keys): heavier sites tend to come first. */
export function weightedOrder<T extends { weight: number }>(sites: T[], draw: (site: T) => number): T[] {
  return sites
    .map((s) => ({ s, key: Math.log(Math.max(draw(s), 1e-12)) / s.weight }))
    .sort((a, b) => b.key - a.key)
    .map((x) => x.s);
}

/** Sorts by distance from (lat, lon); runs of about equally near sites are ordered by weighted chance. */
export function byDistance(sites: Site[], lat: number, lon: number, tieMargin: number, draw: (site: Site) => number): Site[] {
  return byDistanceGroups(sites, lat, lon, tieMargin, draw).flat();
}

/** Like byDistance, but keeps the runs of equally near sites apart. */
function byDistanceGroups(sites: Site[], lat: number, lon: number, tieMargin: number, draw: (site: Site) => number): Site[][] {
  const measured = sites
    .map((s) => ({ s, d: distanceKm(lat, lon, s.lat, s.lon), weight: s.weight }))
    .sort((a, b) => a.d - b.d);
  const out: Site[][] = [];
  for (let i = 0; i < measured.length; ) {
    const limit = measured[i].d * (1 + tieMargin) + 1; // +1 km: co-located edges tie
    let j = i;
    while (j < measured.length && measured[j].d <= limit) j++;
    const group = measured.slice(i, j).map((x) => x.s);
    out.push(group.length > 1 ? weightedOrder(group, draw) : group);
    i = j;
  }
  return out;
}

/** The edges for one answer, best first; at most `count`, never a site without an address of the family. */
export function selectEdges(edges: Site[], place: ClientPlace | null, opts: SelectOptions): Site[] {
  return selectEdgesDetailed(edges, place, opts).sites;
}

/**
 * selectEdges, and whether a weighted draw among two or more candidates decided any of the answer (then the answer
 * holds for the seed's client network only: the ECS scope must cover it).
 */
export function selectEdgesDetailed(edges: Site[], place: ClientPlace | null, opts: SelectOptions): { sites: Site[]; tieBroken: boolean } {
  const eligible = edges.filter((e) => e.weight > 0 && (opts.family === 4 ? e.ipv4 : e.ipv6));
  if (eligible.length === 0) return { sites: [], tieBroken: false };
  const draw = drawFor(opts);
  const p = place ?? {};
  const hasCoords = p.lat !== undefined && p.lon !== undefined;
  // Each tier is a list of runs; a run of two or more was ordered by weighted chance.
  const weighted = (sites: Site[]): Site[][] => (sites.length > 1 ? [weightedOrder(sites, draw)] : [sites]);
  const order = (sites: Site[]): Site[][] =>
    hasCoords ? byDistanceGroups(sites, p.lat!, p.lon!, opts.tieMargin, draw) : weighted(sites);

  const tiers: Site[][][] = [];
  // Pinning: the operator's choice for this country (else continent) comes first.
  let pinned = p.country ? eligible.filter((e) => e.countries.includes(p.country!)) : [];
  if (pinned.length === 0 && p.continent) pinned = eligible.filter((e) => e.continents.includes(p.continent!));
  tiers.push(order(pinned));
  if (hasCoords) {
    tiers.push(order(eligible));
  } else {
    if (p.country) tiers.push(weighted(eligible.filter((e) => e.country === p.country)));
    if (p.continent) tiers.push(weighted(eligible.filter((e) => e.continent === p.continent)));
    tiers.push(opts.defaults.flatMap((name) => eligible.filter((e) => e.name === name)).map((s) => [s]));
    tiers.push(weighted(eligible));
  }
  const seen = new Set<Site>();
  const out: Site[] = [];
  let tieBroken = false;
  for (const tier of tiers) {
    for (const run of tier) {
      // Candidates of this run not already chosen: a draw among two or more of them matters.
      let fresh = 0;
      for (const s of run) if (!seen.has(s)) fresh++;
      for (const s of run) {
        if (out.length >= opts.count) return { sites: out, tieBroken };
        if (!seen.has(s)) {
          seen.add(s);
          out.push(s);
          if (fresh > 1) tieBroken = true;
        }
      }
    }
  }
  return { sites: out, tieBroken };
}
