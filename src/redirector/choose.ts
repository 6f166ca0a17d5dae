/**
 * Which mirrors a client is sent to for one file. Per client location (cached): the mirrors that serve the client,
 * ranked by preference tier (same AS, then same country, then the rest) and great-circle distance. Per decision:
 * walk that ranking, keep the mirrors that are up and have this exact file; the ones within `spread_km` of the nearest
 * (same tier) share the clients by weight, drawn from a hash of client and file (the same client gets the same mirror
 * for a file; different files and clients spread, no hot spot); the rest follow in order.
 */
import { distanceKm, seededDraw } from "../dns/select.ts";
import type { CatalogFile } from "./catalog.ts";
import { servesClient, type MirrorLocation, type MirrorState } from "./mirror-state.ts";

/** A client's location as the GeoIP data (or a configured network) says; every field may be missing. */
export type ClientLocation = MirrorLocation;

export interface Ranked {
  mirror: MirrorState;
  /** 0 same AS, 1 same country, 2 the rest. */
  tier: number;
  /** km, or a stand-in when coordinates are missing (same continent 5,000; else 15,000; unknown 20,000). */
  km: number;
}

export interface ChooserOptions {
  spreadKm: number;
  alternatives: number;
  maxFailures: number;
}

/** 32-bit FNV-1a of a string's UTF-16 units. */
export function hashString(s: string, h = 0x811c9dc5): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const CACHE_MAX = 20_000;

export class Chooser {
  private readonly mirrors: MirrorState[];
  private readonly opts: ChooserOptions;
  private readonly cache = new Map<string, Ranked[]>();

  constructor(mirrors: MirrorState[], opts: ChooserOptions) {
    this.mirrors = mirrors;
    this.opts = opts;
  }

  /** The mirrors that serve this client, best first (health and files not considered: they change per decision). */
  ranked(client: ClientLocation): Ranked[] {
    const key = `${client.lat ?? ""},${client.lon ?? ""},${client.country ?? ""},${client.continent ?? ""},${client.asn ?? ""}`;
    let r = this.cache.get(key);
    if (r) return r;
    r = [];
    for (const m of this.mirrors) {
      if (m.config.weight <= 0 || !servesClient(m.config, client)) continue;
      const loc = m.location;
      const tier = client.asn !== undefined && loc.asn === client.asn ? 0 : client.country !== undefined && loc.country === client.country ? 1 : 2;
      let km: number;
      if (client.lat !== undefined && client.lon !== undefined && loc.lat !== undefined && loc.lon !== undefined) km = distanceKm(client.lat, client.lon, loc.lat, loc.lon);
      else if (client.continent !== undefined && loc.continent === client.continent) km = 5_000;
      else if (client.continent !== undefined && loc.continent !== undefined) km = 15_000;
      else km = 20_000;
      r.push({ mirror: m, tier, km });
    }
    r.sort((a, b) => a.tier - b.tier || a.km - b.km || a.mirror.index - b.mirror.index);
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(key, r);
    return r;
  }

  /**
   * The mirrors for `file`, the one to redirect to first, at most `alternatives`; empty when no usable mirror has
   * it (the CDN serves it). `clientKey` (the client's address) makes the spread deterministic per client and file.
   */
  choose(client: ClientLocation, clientKey: string, file: CatalogFile): Ranked[] {
    const ranked = this.ranked(client);
    const { spreadKm, alternatives, maxFailures } = this.opts;
    const near: Ranked[] = [];
    const rest: Ranked[] = [];
    for (const r of ranked) {
      const m = r.mirror;
      if (!m.has(file.id) || !m.usable(maxFailures)) continue;
      const first = near[0];
      if (!first || (r.tier === first.tier && r.km <= first.km + spreadKm)) near.push(r);
      else {
        rest.push(r);
        if (near.length + rest.length >= alternatives) break;
      }
    }
    if (near.length > 1) {
      // Weighted draws (Efraimidis–Spirakis: u^(1/w), largest first) seeded by client and file.
      const seed = hashString(file.path, hashString(clientKey));
      const keyed = near.map((r) => ({ r, k: Math.log(seededDraw(seed, r.mirror.config.name)) / r.mirror.config.weight }));
      keyed.sort((a, b) => b.k - a.k);
      for (let i = 0; i < keyed.length; i++) near[i] = keyed[i]!.r;
    }
    return near.concat(rest).slice(0, alternatives);
  }
}
