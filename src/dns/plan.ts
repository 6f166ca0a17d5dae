/**
 * Zone resolution: what a (name, type) gets from the static zone, worked out once and kept as wire pieces — the
 * answer records (following CNAMEs inside the zone), NXDOMAIN vs NODATA, glue for NS, RFC 8482 for ANY, and where
 * the director's tailored records go. Pure.
 */
import { CHALLENGE_ANSWER_TTL, type ChallengeStore } from "./challenges.ts";
import { RCODE, TYPE, typeName } from "./codes.ts";
import { encodeName } from "./names.ts";
import { staticPart, type Part } from "./records.ts";
import { asciiLower } from "./wire.ts";
import type { Zone, ZoneRecord } from "./zone.ts";

/** What a (name, type) gets, apart from the director's client-dependent records. */
export interface Plan {
  rcode: number;
  answers: Part[];
  /** Smallest TTL of `answers` (Infinity when none). */
  minTtl: number;
  /** `answers` as text, for the query log. */
  texts: string[];
  /** The director's A/AAAA/TXT follow `answers`, with this owner (null: the query's name); undefined: none. */
  director?: Uint8Array | null;
  additionals: Part[];
  /** The name resolution ended at (after CNAMEs inside the zone), lowercase; undefined for the shared NXDOMAIN plan. */
  final?: string;
  /** Records of the asked type at `final` (CNAMEs before it not counted): none means NODATA there. */
  terminal: number;
  /**
   * Synthesized from a wildcard (RFC 4592): the name did not exist; `source` ("*.<closest encloser>") answered for it,
   * and `nextCloser` (the closest encloser and one more label of the name) is what a signed answer proves absent.
   */
  wildcard?: { source: string; nextCloser: string };
  /** Signed variants, made on demand per signing window (dnssec/respond.ts). */
  signed?: { window: number; answers: Part[]; additionals: Part[]; denial?: Part[]; closer?: Part[]; nsec?: Part[] };
}

/** Plans by name and type for one zone. */
export interface PlanCache {
  plans: Map<string, Plan>;
  nxdomain: Plan;
  /** The zone's SOA, the authority section of negative answers. */
  soa: Part[];
}

const MAX_PLANS = 4096;

/** An empty cache for a zone. */
export function planCache(zone: Zone): PlanCache {
  return {
    plans: new Map(),
    nxdomain: { rcode: RCODE.NXDOMAIN, answers: [], minTtl: Infinity, texts: [], additionals: [], terminal: 0 },
    soa: [staticPart(encodeName(zone.origin), zone.soa)],
  };
}

/**
 * The plan for a lowercase name inside the zone and a type (cached: a change of the challenge records needs a new
 * cache). ACME challenge records count as the zone's own TXT records (and their names as existing names).
 */
export function planFor(c: PlanCache, zone: Zone, key: string, qtype: number, challenges?: ChallengeStore): Plan {
  let wildcard: Plan["wildcard"];
  if (!zone.names.has(key) && !challenges?.exists(key)) {
    wildcard = wildcardFor(zone, key, challenges);
    if (!wildcard) return c.nxdomain;
  }
  const cacheKey = `${qtype} ${key}`;
  let plan = c.plans.get(cacheKey);
  if (!plan) {
    plan = buildPlan(zone, key, qtype, challenges, wildcard);
    if (c.plans.size >= MAX_PLANS) c.plans.clear();
    c.plans.set(cacheKey, plan);
  }
  return plan;
}

/**
 * The wildcard that answers for a name that does not exist (RFC 4592 §3.3.1): "*" below its closest encloser, the
 * nearest existing ancestor; undefined when that has none (NXDOMAIN).
 */
export function wildcardFor(zone: Zone, key: string, challenges?: ChallengeStore): Plan["wildcard"] {
  let nextCloser = key;
  for (let up = key.slice(key.indexOf(".") + 1); nextCloser !== zone.origin; nextCloser = up, up = up.slice(up.indexOf(".") + 1)) {
    if (!zone.names.has(up) && !challenges?.exists(up)) continue;
    const source = `*.${up}`;
    return zone.nodes.has(source) ? { source, nextCloser } : undefined;
  }
  return undefined;
}

/** Resolves a name and type in the zone (at most 8 CNAME hops inside it); `wildcard` answers for a name that does not exist. */
export function buildPlan(zone: Zone, start: string, qtype: number, challenges?: ChallengeStore, wildcard?: Plan["wildcard"]): Plan {
  const answers: Part[] = [];
  const texts: string[] = [];
  const ttls: number[] = [];
  const additionals: Part[] = [];
  let rcode: number = RCODE.NOERROR;
  let director: Uint8Array | null | undefined;
  let owner: Uint8Array | null = null; // the query's name until a CNAME leads elsewhere
  let key = wildcard?.source ?? start; // the records answered with the query's name as owner
  let terminal = 0;
  const push = (o: Uint8Array | null, r: ZoneRecord) => {
    answers.push(staticPart(o, r));
    texts.push(typeof r.data === "string" ? r.data : r.type);
    ttls.push(r.ttl);
    if (r.type !== "CNAME" || qtype === TYPE.CNAME) terminal++;
  };
  for (let hop = 0; hop < 8; hop++) {
    if (key === zone.director.key) {
      const d = zone.director;
      if (qtype === TYPE.ANY) push(owner, rfc8482(d.ttl));
      else if (qtype === TYPE.A || qtype === TYPE.AAAA || qtype === TYPE.TXT) director = owner;
      break;
    }
    const node = withChallenges(zone, key, challenges);
    if (!node) {
      if (!zone.names.has(key) && !challenges?.exists(key)) rcode = RCODE.NXDOMAIN;
      break;
    }
    const cname = node.get("CNAME");
    // The CNAME's own node answers CNAME, ANY and NSEC (a signed zone's NSEC lives beside the CNAME, RFC 4035 §2.3).
    if (cname && qtype !== TYPE.CNAME && qtype !== TYPE.ANY && qtype !== TYPE.NSEC) {
      push(owner, cname[0]);
      const t = cname[0].data as string;
      const tk = asciiLower(t);
      if (tk !== zone.origin && !tk.endsWith(zone.dotOrigin)) {
        terminal++; // resolution goes on outside the zone: nothing to deny here
        break;
      }
      owner = encodeName(t);
      key = tk;
      continue;
    }
    if (qtype === TYPE.ANY) {
      push(owner, rfc8482(Math.min(...[...node.values()].flat().map((r) => r.ttl))));
      break;
    }
    const type = typeName(qtype);
    for (const r of node.get(type) ?? []) push(owner, r);
    if (qtype === TYPE.NS) for (const r of node.get("NS") ?? []) additionals.push(...glue(r.data as string, zone));
    break;
  }
  return { rcode, answers, minTtl: Math.min(Infinity, ...ttls), texts, director, additionals, final: key, terminal, wildcard };
}

/** A name's records: the zone's, with the ACME challenge TXT values held for it added. */
function withChallenges(zone: Zone, key: string, challenges: ChallengeStore | undefined): Map<string, ZoneRecord[]> | undefined {
  const node = zone.nodes.get(key);
  const values = challenges?.values(key) ?? [];
  if (values.length === 0) return node;
  const ttl = Math.min(zone.ttl, CHALLENGE_ANSWER_TTL);
  const txt = values.map((v): ZoneRecord => ({ type: "TXT", ttl, data: [encoder.encode(v)] }));
  const out = new Map(node);
  out.set("TXT", [...(node?.get("TXT") ?? []), ...txt]);
  return out;
}

const encoder = new TextEncoder();

/** RFC 8482: a small HINFO instead of everything. */
function rfc8482(ttl: number): ZoneRecord {
  return { type: "HINFO", ttl, data: { cpu: "RFC8482", os: "" } };
}

/** In-zone addresses of a name server, for the additional section. */
function glue(target: string, zone: Zone): Part[] {
  const node = zone.nodes.get(asciiLower(target));
  if (!node) return [];
  const owner = encodeName(target);
  return [...(node.get("A") ?? []), ...(node.get("AAAA") ?? [])].map((r) => staticPart(owner, r));
}
