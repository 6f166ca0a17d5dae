/**
 * The authoritative answer to one DNS query in wire format: the protocol checklist (ID/opcode/RD/question echoed
 * byte for byte, AA, NXDOMAIN vs NODATA with the SOA, REFUSED outside the zone, FORMERR/NOTIMP/BADVERS) around the
 * parts that do the work: EDNS (edns.ts), zone resolution (plan.ts), the director (director.ts) and wire assembly
 * (assemble.ts). Pure: bytes and a client address in, bytes out.
 *
 * Hot path: a query seen before (the same bytes apart from ID and case, and for the director's tailored replies the
 * same client) gets its finished reply again, ID and question patched in (replies.ts). Otherwise everything that
 * does not depend on the client is worked out once per (name, type) and kept as wire bytes; the director's records
 * are cached per located client. A reply is then a header, the query's question bytes and those pieces copied into
 * one buffer.
 */
import type { GeoIp } from "../geoip/geoip.ts";
import { assemble, errorBytes, NONE, type Head, type OptOut } from "./assemble.ts";
import { RCODE, TYPE } from "./codes.ts";
import { directorAnswer, directorCache, serviceSets as serviceSetsOf, type DirectorAnswer, type DirectorCache, type DirectorHealth, type ServiceSets } from "./director.ts";
import type { ChallengeStore } from "./challenges.ts";
import { lowerName } from "./dnssec/canonical.ts";
import { signedSections, signingCache, type SigningCache } from "./dnssec/respond.ts";
import type { ZoneSigner } from "./dnssec/sign.ts";
import type { ClientSubnet } from "./ecs.ts";
import { parseEdns } from "./edns.ts";
import { inZoneKey, inZoneLabels, textKey } from "./names.ts";
import { planCache, planFor, type PlanCache } from "./plan.ts";
import { ReplyCache } from "./replies.ts";
import type { Site } from "./select.ts";
import { QR, RD, counts, readQuestion, type RawQuestion } from "./wire.ts";
import type { Zone } from "./zone.ts";

export type { DirectorHealth, ServiceSets } from "./director.ts";
export { SEED_PREFIX } from "./director.ts";

/** Told about every answered query (doh.ts answerWire calls it): metrics, query log. */
export interface QueryObserver {
  /** True when `answered` wants the time the query took (then `clock` is read before and after). */
  readonly timed: boolean;
  clock(): number;
  answered(answer: Answer, client: Uint8Array | null, transport: Transport, started: number): void;
}

export type Transport = "udp" | "tcp" | "dot" | "doh";

/** What the handler needs besides the query. */
export interface Server {
  zone: Zone;
  geoip: GeoIp;
  /** EDNS payload size we advertise. */
  udpSize: number;
  /** Edge health; without it every edge is answerable. */
  health?: DirectorHealth;
  observer?: QueryObserver;
  /** ACME challenge TXT records published through the operator endpoint. */
  challenges?: ChallengeStore;
  /** DNSSEC: answers to queries with the DO bit are signed with these keys. */
  dnssec?: ZoneSigner;
  /** Milliseconds clock for the reply cache's TTLs (default Date.now). */
  now?: () => number;
}

/** An answer and what HTTP caching needs to know about it. */
export interface Answer {
  bytes: Uint8Array;
  rcode: number;
  /** Seconds the answer may be cached: smallest answer TTL, or the negative TTL; 0 for errors. */
  ttl: number;
  /** Depends on the client's address (mark it private in HTTP). */
  tailored: boolean;
  /** The UDP payload size the query allows: 512 without EDNS, else its OPT CLASS (at least 512). */
  requestedSize: number;
  /** For metrics and logs: the question's type (-1: none), the question (labels as sent), the ECS option, */
  qtype: number;
  question: RawQuestion | null;
  ecs: ClientSubnet | undefined;
  /** the edges the director named, and the static answers' data (addresses, targets; else the record type). */
  edges: readonly Site[] | undefined;
  records: readonly string[] | undefined;
}

/** Per-server caches. */
interface Compiled {
  plans: PlanCache;
  director: DirectorCache;
  /** The challenge records' version the plans were made under. */
  challenges: number;
  signing: SigningCache;
  /** Finished replies, dropped when health, the signing window or the challenge records move. */
  replies: ReplyCache;
}

const compiledFor = new WeakMap<Server, Compiled>();

function compile(server: Server): Compiled {
  let c = compiledFor.get(server);
  if (!c) {
    c = { plans: planCache(server.zone), director: directorCache(), challenges: 0, signing: signingCache(), replies: new ReplyCache() };
    compiledFor.set(server, c);
  }
  const ch = server.challenges;
  if (ch) {
    ch.expire();
    if (ch.version !== c.challenges) {
      c.plans = planCache(server.zone);
      c.challenges = ch.version;
      c.replies.clear();
    }
  }
  c.replies.validate(server.health ? server.health.version : 0, server.dnssec ? server.dnssec.window() : 0);
  return c;
}

/** Answers one query for `client` (the connecting address, bytes; null when unknown). Null: drop it (not a query). */
export function answerQuery(query: Uint8Array, client: Uint8Array | null, server: Server): Answer | null {
  if (query.length < 12) return null;
  const flags = (query[2] << 8) | query[3];
  if (flags & QR) return null; // a response: never answer one (loops)
  const compiled = compile(server);
  const now = server.now ? server.now() : Date.now();
  const replayed = compiled.replies.lookup(query, client, now);
  if (replayed) return replayed;
  const opcode = (flags >> 11) & 0xf;
  const q = counts(query).qd === 1 ? readQuestion(query) : null;
  const head: Head = { query, flags: (opcode << 11) | (flags & RD), udpSize: server.udpSize, q };
  if (opcode !== 0) return errorAnswer(head, RCODE.NOTIMP, undefined, false, 512);
  if (!q) return errorAnswer(head, RCODE.FORMERR, undefined, false, 512);

  const parsed = parseEdns(query, q);
  if (!parsed.ok) return errorAnswer(head, parsed.rcode, parsed.withOpt ? { version: 0 } : undefined, false, parsed.size);
  const edns = parsed.edns;
  const ecs = edns?.ecs;
  const requestedSize = edns ? edns.size : 512;
  const ednsOut = (scope: number): OptOut | undefined => (edns ? { version: 0, ecs, scope } : undefined);
  const refuse = (rcode: number, aa = false) => errorAnswer(head, rcode, ednsOut(0), aa, requestedSize, ecs);

  if (q.qtype === TYPE.OPT) return refuse(RCODE.FORMERR);
  if (q.qclass !== 1) return refuse(RCODE.REFUSED);
  const zone = server.zone;
  const key = textKey(q.bytes); // null when a label cannot be written as text (then it is in no zone name)
  const inZone = key !== null ? inZoneKey(key, zone.origin, zone.dotOrigin) : inZoneLabels(q.labels, zone.originLabels);
  if (!inZone) return refuse(RCODE.REFUSED);
  if (q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR) return refuse(RCODE.REFUSED);
  // Meta and query types (RFC 6895: 128–255) other than ANY; types above are data types (CAA), unknown ones NODATA.
  if (q.qtype >= 128 && q.qtype <= 255 && q.qtype !== TYPE.ANY) return refuse(RCODE.NOTIMP, true);

  const plan = key === null ? compiled.plans.nxdomain : planFor(compiled.plans, zone, key, q.qtype, server.challenges);
  let director: DirectorAnswer | undefined;
  if (plan.director !== undefined) director = directorAnswer(compiled.director, server, q.qtype, ecs, client);

  const directorCount = director?.tails.length ?? 0;
  // Negative: no such name, or no records of the type where resolution ended (the SOA, and the proof, go along).
  const negative = plan.rcode === RCODE.NXDOMAIN || (plan.terminal === 0 && directorCount === 0);
  const tailored = director?.tailored ?? false;
  const ttl = Math.min(
    plan.answers.length ? plan.minTtl : Infinity,
    directorCount ? zone.director.ttl : Infinity,
    negative ? zone.negativeTtl : Infinity,
  );
  const opt: OptOut | undefined = edns ? { version: 0, ecs, scope: tailored ? director!.scope : 0, dnssecOk: edns.dnssecOk } : undefined;
  let bytes: Uint8Array;
  if (server.dnssec && edns?.dnssecOk) {
    const name = lowerName(q.bytes.subarray(0, q.bytes.length - 4));
    const signed = signedSections(compiled.signing, server.dnssec, zone, compiled.plans.soa, { name, key, qtype: q.qtype, plan, director, negative }, server.challenges);
    bytes = assemble(head, {
      rcode: plan.rcode,
      aa: true,
      answers: signed.answers,
      director: signed.director,
      directorOwner: plan.director ?? null,
      authorities: signed.authorities,
      additionals: signed.additionals,
      edns: opt,
    });
  } else {
    bytes = assemble(head, {
      rcode: plan.rcode,
      aa: true,
      answers: plan.answers,
      director: director?.tails,
      directorOwner: plan.director ?? null,
      authorities: negative ? compiled.plans.soa : NONE,
      additionals: plan.additionals,
      edns: opt,
    });
  }
  const answer: Answer = {
    bytes,
    rcode: plan.rcode,
    ttl,
    tailored,
    requestedSize,
    qtype: q.qtype,
    question: q,
    ecs,
    edges: director?.sites,
    records: plan.answers.length ? plan.texts : undefined,
  };
  // The director's replies without ECS depend on the connecting address (its place, and the TXT prints it).
  compiled.replies.store(query, client, answer, plan.director !== undefined && !ecs, now);
  return answer;
}

/** The reply cache's hits and misses for a server (tests, metrics). */
export function replyStats(server: Server): { hits: number; misses: number; size: number } {
  const r = compile(server).replies;
  return { ...r.stats, size: r.size };
}

/**
 * The edges the director may name now, per family: every edge with an address of the family and a weight, less
 * those health takes out (fail-open per family when too few are left). Worked out once per health version.
 */
export function serviceSets(server: Server): ServiceSets {
  return serviceSetsOf(compile(server).director, server);
}

function errorAnswer(head: Head, rcode: number, edns: OptOut | undefined, aa: boolean, requestedSize: number, ecs?: ClientSubnet): Answer {
  return {
    bytes: errorBytes(head, rcode, edns, aa),
    rcode,
    ttl: 0,
    tailored: false,
    requestedSize,
    qtype: head.q ? head.q.qtype : -1,
    question: head.q,
    ecs,
    edges: undefined,
    records: undefined,
  };
}
