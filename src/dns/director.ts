/**
 * The director: the tailored A/AAAA/TXT of the one tailored name. Locates the client (ECS or connecting address →
 * GeoIP), takes the edges in service (health, fail-open), picks the nearest (select.ts) and keeps the records per
 * located client and health version, so a repeat client costs a map lookup. Pure.
 */
import type { GeoIp } from "../geoip/geoip.ts";
import type { GeoResult } from "../geoip/types.ts";
import { formatIp, maskIp, parseIPv4, parseIPv6 } from "../net/ip.ts";
import { TYPE } from "./codes.ts";
import type { ClientSubnet } from "./ecs.ts";
import { rrTail, txtTail } from "./records.ts";
import { networkSeed, selectEdgesDetailed, type Site } from "./select.ts";
import { formatTxt, splitTxt } from "./txt.ts";
import type { Zone } from "./zone.ts";

/** Which edges the director may name now (health/monitor.ts HealthMonitor is one). */
export interface DirectorHealth {
  /** Changes whenever the answerable edges may have changed: director answers cached under another are redone. */
  readonly version: number;
  answerable<T extends { name: string }>(edges: T[]): { edges: T[]; failOpen: boolean };
}

/** The director's records for one located client and type. */
export interface DirectorAnswer {
  tails: Uint8Array[];
  tailored: boolean;
  scope: number;
  /** The edges named (A/AAAA), and the health version they were chosen under. */
  sites?: Site[];
  version?: number;
  /** Their RRSIGs for one signing window (dnssec/respond.ts). */
  signed?: { window: number; rrsigs: Uint8Array[] };
}

/** The edges the director may name, per address family, under one health version. */
export interface ServiceSets {
  version: number;
  v4: Site[];
  v6: Site[];
  /** Too few edges of a family are in service: that family answers with all of them, */
  failOpen4: boolean;
  failOpen6: boolean;
  /** or, when the director has fallback addresses of the family, with those. */
  fallback4: boolean;
  fallback6: boolean;
}

/** Client networks whose tie-breaks are alike: a /24 for IPv4, a /56 for IPv6 (one site or household). */
export const SEED_PREFIX = { 4: 24, 6: 56 } as const;

interface Located {
  ip: string;
  family: 4 | 6;
  geo: GeoResult | null;
  tailor: boolean;
  /** Seeds the weighted choice among equally good edges. */
  seed: number;
  /** The prefix the seed was taken from (ECS scope when the seed decided something). */
  seedPrefix: number;
  a?: DirectorAnswer;
  aaaa?: DirectorAnswer;
  txt?: DirectorAnswer;
}

/** Per-server director caches: located clients, edge records, the current service sets. */
export interface DirectorCache {
  located: Map<number | string, Located>;
  siteTails: Map<Site, { a?: Uint8Array; aaaa?: Uint8Array }>;
  service?: ServiceSets;
  /** The fallback answers per family (made once). */
  fallback?: { 4: DirectorAnswer; 6: DirectorAnswer };
}

const MAX_LOCATED = 20_000;

/** An empty cache. */
export function directorCache(): DirectorCache {
  return { located: new Map(), siteTails: new Map() };
}

/** What the director needs from the server. */
export interface DirectorContext {
  zone: Zone;
  geoip: GeoIp;
  health?: DirectorHealth;
}

/** The director's records of `qtype` (A, AAAA or TXT) for a client (ECS, else the connecting address). */
export function directorAnswer(
  c: DirectorCache,
  ctx: DirectorContext,
  qtype: number,
  ecs: ClientSubnet | undefined,
  client: Uint8Array | null,
): DirectorAnswer {
  const loc = locate(c, ecs, client, ctx.geoip);
  const d = ctx.zone.director;
  if (qtype === TYPE.TXT) {
    if (!loc.txt) {
      const text = formatTxt(d.txt, { ip: loc.ip, family: loc.family, info: loc.geo?.info ?? {} });
      loc.txt = { tails: [txtTail(splitTxt(text), d.ttl)], tailored: loc.tailor, scope: loc.geo?.prefix ?? 0 };
    }
    return loc.txt;
  }
  const family = qtype === TYPE.A ? 4 : 6;
  const service = serviceSets(c, ctx);
  if (family === 4 ? service.fallback4 : service.fallback6) return fallbackAnswer(c, ctx.zone)[family];
  const cached = family === 4 ? loc.a : loc.aaaa;
  if (cached && cached.version === service.version) return cached;
  const picked = selectEdgesDetailed(family === 4 ? service.v4 : service.v6, loc.geo?.info ?? null, {
    count: d.answers,
    family,
    tieMargin: d.tieMargin,
    defaults: d.defaults,
    seed: loc.seed,
  });
  let scope = loc.geo?.locationPrefix ?? 0;
  // When the seed chose among equally good edges, the answer holds for the seed's network only.
  if (picked.tieBroken && loc.tailor) scope = Math.max(scope, loc.seedPrefix);
  const answer: DirectorAnswer = {
    tails: picked.sites.map((s) => siteTail(c, s, family, d.ttl)),
    tailored: loc.tailor,
    scope,
    sites: picked.sites,
    version: service.version,
  };
  if (family === 4) loc.a = answer;
  else loc.aaaa = answer;
  return answer;
}

/**
 * The edges the director may name now, per family: every edge with an address of the family and a weight, less
 * those health takes out (fail-open per family when too few are left). Worked out once per health version.
 */
export function serviceSets(c: DirectorCache, ctx: DirectorContext): ServiceSets {
  const h = ctx.health;
  const version = h ? h.version : 0;
  if (c.service && c.service.version === version) return c.service;
  const sites = ctx.zone.sites;
  const of = (family: 4 | 6) => {
    const eligible = sites.filter((s) => s.weight > 0 && (family === 4 ? s.ipv4 : s.ipv6));
    if (!h || eligible.length === 0) return { edges: eligible, failOpen: false };
    return h.answerable(eligible);
  };
  const v4 = of(4);
  const v6 = of(6);
  const fb = ctx.zone.director.fallback;
  c.service = {
    version,
    v4: v4.edges,
    v6: v6.edges,
    failOpen4: v4.failOpen,
    failOpen6: v6.failOpen,
    fallback4: v4.failOpen && fb.v4.length > 0,
    fallback6: v6.failOpen && fb.v6.length > 0,
  };
  return c.service;
}

/** The fallback addresses as answers: the same for every client (not tailored, ECS scope 0), naming no edge. */
function fallbackAnswer(c: DirectorCache, zone: Zone): { 4: DirectorAnswer; 6: DirectorAnswer } {
  const { ttl, fallback } = zone.director;
  return (c.fallback ??= {
    4: { tails: fallback.v4.map((a) => rrTail(TYPE.A, ttl, parseIPv4(a)!)), tailored: false, scope: 0, sites: [] },
    6: { tails: fallback.v6.map((a) => rrTail(TYPE.AAAA, ttl, parseIPv6(a)!)), tailored: false, scope: 0, sites: [] },
  });
}

/** Where the client is: the ECS address if given (SOURCE 0: nowhere), else the connecting address. Cached. */
function locate(c: DirectorCache, ecs: ClientSubnet | undefined, client: Uint8Array | null, geoip: GeoIp): Located {
  let bytes: Uint8Array | null;
  let seedPrefix: number;
  if (ecs) {
    if (ecs.source === 0) bytes = null;
    else bytes = ecs.address.subarray(0, ecs.family === 1 ? 4 : 16);
    seedPrefix = Math.min(ecs.source, ecs.family === 1 ? SEED_PREFIX[4] : SEED_PREFIX[6]);
  } else {
    bytes = client;
    seedPrefix = client && client.length === 16 ? SEED_PREFIX[6] : SEED_PREFIX[4];
  }
  const key: number | string = bytes ? locationKey(bytes, seedPrefix) : ecs?.family === 2 ? "none6" : "none4";
  let loc = c.located.get(key);
  if (loc) return loc;
  if (!bytes) {
    const v6 = ecs?.family === 2;
    loc = { ip: v6 ? "::" : "0.0.0.0", family: v6 ? 6 : 4, geo: null, tailor: false, seed: 0, seedPrefix: 0 };
  } else {
    loc = {
      ip: formatIp(bytes),
      family: bytes.length === 4 ? 4 : 6,
      geo: geoip.lookup(bytes),
      tailor: true,
      seed: networkSeed(maskIp(bytes, seedPrefix)),
      seedPrefix,
    };
  }
  if (c.located.size >= MAX_LOCATED) c.located.clear();
  c.located.set(key, loc);
  return loc;
}

/** A cache key for an address and seed prefix: a number for IPv4, hex text for IPv6. */
function locationKey(b: Uint8Array, prefix: number): number | string {
  if (b.length === 4) return (((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0) * 64 + prefix;
  let s = "";
  for (let i = 0; i < 16; i++) s += (b[i] < 16 ? "0" : "") + b[i].toString(16);
  return `${s}/${prefix}`;
}

/** An edge's A or AAAA record tail (made once per edge). */
function siteTail(c: DirectorCache, s: Site, family: 4 | 6, ttl: number): Uint8Array {
  let t = c.siteTails.get(s);
  if (!t) c.siteTails.set(s, (t = {}));
  if (family === 4) return (t.a ??= rrTail(TYPE.A, ttl, parseIPv4(s.ipv4!)!));
  return (t.aaaa ??= rrTail(TYPE.AAAA, ttl, parseIPv6(s.ipv6!)!));
}
