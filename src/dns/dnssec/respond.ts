/**
 * DNSSEC in replies to queries with the DO bit: every RRset of an answer followed by its RRSIGs (static records, the
 * director's tailored A/AAAA/TXT, challenge TXT, the DNSKEY set, glue), and for negative answers the signed SOA with
 * minimally covering NSECs (denial.ts). Signatures are cached per signing window: with the plan of a (name, type),
 * with the director's answer per client and per set of edges, and per denied name — so signing stays off the hot
 * path for repeated questions. Pure.
 */
import type { ChallengeStore } from "../challenges.ts";
import { RCODE, TYPE, typeCode } from "../codes.ts";
import type { DirectorAnswer } from "../director.ts";
import { encodeName } from "../names.ts";
import type { Plan } from "../plan.ts";
import type { Part } from "../records.ts";
import type { Zone } from "../zone.ts";
import { compareNames, lowerName } from "./canonical.ts";
import { cover, nodataNsec, nsecTail, nxdomainNsecs, type ExistingNames, type Nsec } from "./denial.ts";
import type { ZoneSigner } from "./sign.ts";

/** Signatures and denial records kept for the current signing window. */
export interface SigningCache {
  window: number;
  /** The SOA with its RRSIG: the authority of negative answers. */
  soa?: Part[];
  existing?: { version: number; names: ExistingNames; has: Set<string> };
  /** NXDOMAIN NSECs with RRSIGs, by denied name. */
  nx: Map<string, Part[]>;
  /** RRSIGs of the director's A/AAAA sets, by type and edges. */
  director: Map<string, Uint8Array[]>;
}

const MAX_ENTRIES = 10_000;

/** An empty cache. */
export function signingCache(): SigningCache {
  return { window: -1, nx: new Map(), director: new Map() };
}

/** The sections of a signed reply. */
export interface SignedSections {
  answers: Part[];
  director?: Uint8Array[];
  authorities: Part[];
  additionals: Part[];
}

/** What the reply is about: the question's name (lowercase wire and text key, null when not text), type and plan. */
export interface SignedQuery {
  name: Uint8Array;
  key: string | null;
  qtype: number;
  plan: Plan;
  director?: DirectorAnswer;
  negative: boolean;
}

const latin1 = (b: Uint8Array) => String.fromCharCode(...b);

/** The signed sections for one reply. */
export function signedSections(
  c: SigningCache,
  signer: ZoneSigner,
  zone: Zone,
  soa: Part[],
  q: SignedQuery,
  challenges?: ChallengeStore,
): SignedSections {
  const window = signer.window();
  if (c.window !== window) {
    c.window = window;
    c.soa = undefined;
    c.nx.clear();
    c.director.clear();
  }
  const plan = q.plan;
  let planSigned = plan.signed;
  if (plan.final !== undefined && (!planSigned || planSigned.window !== window)) {
    // Records synthesized from a wildcard are signed as the wildcard's (RFC 4035 §5.3.4 rebuilds it from the labels).
    const asked = plan.wildcard ? encodeName(plan.wildcard.source) : q.name;
    const ownerOf = (p: Part) => p.owner ?? asked;
    plan.signed = planSigned = {
      window,
      answers: signer.signParts(plan.answers, ownerOf),
      additionals: signer.signParts(plan.additionals, ownerOf),
    };
  }
  const out: SignedSections = {
    answers: planSigned?.answers ?? [],
    additionals: planSigned?.additionals ?? [],
    authorities: [],
  };
  if (q.director?.tails.length) out.director = [...q.director.tails, ...directorRrsigs(c, signer, zone, q.director)];
  // A wildcard's answer (or NODATA) also proves that no closer name exists: the NSEC covering the next-closer name.
  let closer: Part[] = [];
  if (plan.wildcard && planSigned) {
    const nextCloser = encodeName(plan.wildcard.nextCloser);
    planSigned.closer ??= nsecParts(signer, zone, [cover(nextCloser, existingNames(c, zone, challenges).names)], q.name);
    closer = planSigned.closer;
  }
  if (!q.negative) out.authorities = closer;
  if (q.negative) {
    c.soa ??= signer.signParts(soa, (p) => p.owner!);
    let denial: Part[];
    if (plan.rcode === RCODE.NXDOMAIN) {
      const final = plan.final !== undefined ? encodeName(plan.final) : q.name;
      const k = latin1(final);
      let parts = c.nx.get(k);
      if (!parts) {
        const existing = existingNames(c, zone, challenges);
        parts = nsecParts(signer, zone, nxdomainNsecs(final, existing.names, (n) => existing.has.has(latin1(n))), q.name);
        if (c.nx.size >= MAX_ENTRIES) c.nx.clear();
        c.nx.set(k, parts);
      }
      denial = parts;
    } else if (planSigned && plan.final !== undefined) {
      // NODATA where resolution ended: made once per plan and window, when first needed.
      planSigned.denial ??= nsecParts(signer, zone, [nodataNsec(encodeName(plan.final), existingNames(c, zone, challenges).names)], q.name);
      denial = planSigned.denial;
      // A question for the NSEC itself gets it as the answer (its bitmap lists NSEC: an empty answer would contradict it);
      // at a name a wildcard answers for, the wildcard's NSEC synthesized for the name, with the proof of no closer name.
      if (q.qtype === TYPE.NSEC && !plan.wildcard) return { ...out, answers: denial };
      if (q.qtype === TYPE.NSEC) return { ...out, answers: (planSigned.nsec ??= wildcardNsec(signer, zone, q.name, plan.final, c, challenges)), authorities: closer };
    } else denial = [];
    out.authorities = [...c.soa, ...denial, ...closer];
  }
  return out;
}

/** The NSEC of a name a wildcard answers for: the wildcard's types, the next name below the name; signed as the wildcard. */
function wildcardNsec(signer: ZoneSigner, zone: Zone, qname: Uint8Array, source: string, c: SigningCache, challenges?: ChallengeStore): Part[] {
  const existing = existingNames(c, zone, challenges).names;
  const wildcard = encodeName(source);
  const n = nodataNsec(qname, existing);
  const tail = nsecTail(n.next, existing.types(wildcard), zone.negativeTtl);
  return [{ owner: null, tail }, ...signer.rrsigs(wildcard, TYPE.NSEC, zone.negativeTtl, [tail.subarray(10)]).map((t) => ({ owner: null, tail: t }))];
}

/** The director answer's RRSIGs: per answer object, and for edge sets across clients. */
function directorRrsigs(c: SigningCache, signer: ZoneSigner, zone: Zone, d: DirectorAnswer): Uint8Array[] {
  const window = c.window;
  if (d.signed?.window === window) return d.signed.rrsigs;
  const type = (d.tails[0][0] << 8) | d.tails[0][1];
  const key = d.sites?.length ? `${type} ${d.sites.map((s) => s.name).join(" ")}` : undefined;
  let rrsigs = key ? c.director.get(key) : undefined;
  if (!rrsigs) {
    rrsigs = signer.rrsigs(encodeName(zone.director.key), type, zone.director.ttl, d.tails.map((t) => t.subarray(10)));
    if (key) {
      if (c.director.size >= MAX_ENTRIES) c.director.clear();
      c.director.set(key, rrsigs);
    }
  }
  d.signed = { window, rrsigs };
  return rrsigs;
}

/** NSEC records and their RRSIGs; an NSEC owned by the query's name points at the question. */
function nsecParts(signer: ZoneSigner, zone: Zone, nsecs: Nsec[], qname: Uint8Array): Part[] {
  const ttl = zone.negativeTtl;
  const out: Part[] = [];
  const seen = new Set<string>();
  for (const n of nsecs) {
    if (seen.has(latin1(n.owner))) continue;
    seen.add(latin1(n.owner));
    const owner = compareNames(n.owner, qname) === 0 ? null : n.owner;
    const tail = nsecTail(n.next, n.types, ttl);
    out.push({ owner, tail });
    for (const rrsig of signer.rrsigs(n.owner, TYPE.NSEC, ttl, [tail.subarray(10)])) out.push({ owner, tail: rrsig });
  }
  return out;
}

/** The zone's existing names in canonical order with their types (the challenge records' version decides when to redo). */
function existingNames(c: SigningCache, zone: Zone, challenges?: ChallengeStore): NonNullable<SigningCache["existing"]> {
  const version = challenges?.version ?? 0;
  if (c.existing?.version === version) return c.existing;
  const types = new Map<string, number[]>();
  const d = zone.director;
  const challengeNames = challenges?.names() ?? [];
  const all = new Set<string>([...zone.names]);
  // A challenge name exists, and so does every name between it and the origin.
  for (const n of challengeNames)
    for (let k = n; ; k = k.slice(k.indexOf(".") + 1)) {
      all.add(k);
      if (k === zone.origin || !k.includes(".")) break;
    }
  for (const key of all) {
    const t: number[] = [];
    for (const name of zone.nodes.get(key)?.keys() ?? []) t.push(typeCode(name)!);
    if (key === d.key) {
      if (zone.sites.some((s) => s.weight > 0 && s.ipv4) || d.fallback.v4.length) t.push(TYPE.A);
      if (zone.sites.some((s) => s.weight > 0 && s.ipv6) || d.fallback.v6.length) t.push(TYPE.AAAA);
      t.push(TYPE.TXT);
    }
    if (challengeNames.includes(key)) t.push(TYPE.TXT);
    types.set(latin1(encodeName(key)), t);
  }
  const sorted = [...all].map((k) => encodeName(k)).sort(compareNames);
  const names: ExistingNames = { sorted, types: (n) => types.get(latin1(lowerName(n))) ?? [] };
  c.existing = { version, names, has: new Set(sorted.map(latin1)) };
  return c.existing;
}
