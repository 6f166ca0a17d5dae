/**
 * The authoritative answer to one DNS query in wire format: the whole protocol checklist (ID/opcode/RD/question
 * echoed byte for byte, AA, NXDOMAIN vs NODATA with the SOA, REFUSED outside the zone, FORMERR/NOTIMP/BADVERS,
 * EDNS and ECS) and the director's tailored A/AAAA/TXT. Pure: bytes and a client address in, bytes out.
 *
 * Hot path: everything that does not depend on the client is worked out once per (name, type) and kept as wire
 * bytes (static records are encoded with dns-packet when first needed); the director's records are cached per
 * located network. A reply is then a header, the query's question bytes and those pieces copied into one buffer.
 */
import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import type { GeoIp } from "../geoip/geoip.ts";
import { formatIp, maskIp, parseIPv4, parseIPv6 } from "../net/ip.ts";
import type { GeoResult } from "../geoip/types.ts";
import { ECS_CODE, encodeClientSubnet, parseClientSubnet, type ClientSubnet } from "./ecs.ts";
import { networkSeed, selectEdgesDetailed, type Site } from "./select.ts";
import { formatTxt, splitTxt } from "./txt.ts";
import { AA, QR, RCODE, RD, asciiLower, counts, readQuestion, walkRecords, type RawQuestion } from "./wire.ts";
import type { Zone, ZoneRecord } from "./zone.ts";

/** Which edges the director may name now (health/monitor.ts HealthMonitor is one). */
export interface DirectorHealth {
  /** Changes whenever the answerable edges may have changed: director answers cached under another are redone. */
  readonly version: number;
  answerable<T extends { name: string }>(edges: T[]): { edges: T[]; failOpen: boolean };
}

/** Told about every answered query (doh.ts answerWire calls it): metrics, query log. */
export interface QueryObserver {
  /** True when `answered` wants the time the query took (then `clock` is read before and after). */
  readonly timed: boolean;
  clock(): number;
  answered(answer: Answer, client: Uint8Array | null, transport: Transport, started: number): void;
}

export type Transport = "udp" | "tcp" | "doh";

/** What the handler needs besides the query. */
export interface Server {
  zone: Zone;
  geoip: GeoIp;
  /** EDNS payload size we advertise. */
  udpSize: number;
  /** Edge health; without it every edge is answerable. */
  health?: DirectorHealth;
  observer?: QueryObserver;
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

const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, TXT: 16, AAAA: 28, OPT: 41, IXFR: 251, AXFR: 252, ANY: 255 } as const;

/** Client networks whose tie-breaks are alike: a /24 for IPv4, a /56 for IPv6 (one site or household). */
export const SEED_PREFIX = { 4: 24, 6: 56 } as const;

interface Edns {
  version: number;
  size: number;
  options: { code: number; data: Uint8Array }[];
}

/** One resource record in wire form: owner name (null: the query's own name, case as sent) and the rest. */
interface Part {
  owner: Uint8Array | null;
  /** TYPE, CLASS, TTL, RDLENGTH and RDATA. */
  tail: Uint8Array;
}

/** What a (name, type) gets, apart from the director's client-dependent records. */
interface Plan {
  rcode: number;
  answers: Part[];
  /** Smallest TTL of `answers` (Infinity when none). */
  minTtl: number;
  /** `answers` as text, for the query log. */
  texts: string[];
  /** The director's A/AAAA/TXT follow `answers`, with this owner (null: the query's name); undefined: none. */
  director?: Uint8Array | null;
  additionals: Part[];
}

/** The director's records for one located network and type. */
interface DirectorAnswer {
  tails: Uint8Array[];
  tailored: boolean;
  scope: number;
  /** The edges named (A/AAAA), and the health version they were chosen under. */
  sites?: Site[];
  version?: number;
}

/** The edges the director may name, per address family, under one health version. */
export interface ServiceSets {
  version: number;
  v4: Site[];
  v6: Site[];
  /** Too few edges of a family are in service: that family answers with all of them. */
  failOpen4: boolean;
  failOpen6: boolean;
}

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

/** Per-server caches: static plans by name and type, director answers by located network, edge records. */
interface Compiled {
  plans: Map<string, Plan>;
  nxdomain: Plan;
  /** The zone's SOA, the authority section of negative answers. */
  soa: Part[];
  located: Map<number | string, Located>;
  siteTails: Map<Site, { a?: Uint8Array; aaaa?: Uint8Array }>;
  service?: ServiceSets;
}

const MAX_PLANS = 4096;
const MAX_LOCATED = 20_000;
const compiledFor = new WeakMap<Server, Compiled>();

/** Answers one query for `client` (the connecting address, bytes; null when unknown). Null: drop it (not a query). */
export function answerQuery(query: Uint8Array, client: Uint8Array | null, server: Server): Answer | null {
  if (query.length < 12) return null;
  const flags = (query[2] << 8) | query[3];
  if (flags & QR) return null; // a response: never answer one (loops)
  const opcode = (flags >> 11) & 0xf;
  const c = counts(query);
  const q = c.qd === 1 ? readQuestion(query) : null;
  const head = { query, flags: (opcode << 11) | (flags & RD), udpSize: server.udpSize, q };
  let requestedSize = 512;
  const reply = (rcode: number, edns?: OptOut, aa = false) => errorReply(head, rcode, edns, aa, requestedSize);
  if (opcode !== 0) return reply(RCODE.NOTIMP);
  if (!q) return reply(RCODE.FORMERR);

  // EDNS: at most one OPT, in the additional section, root owner.
  let edns: Edns | undefined;
  const extra = c.an + c.ns + c.ar;
  if (extra > 0) {
    const walked = walkRecords(query, q.end, extra);
    if (!walked) return reply(RCODE.FORMERR);
    let opt = -1;
    let count = 0;
    let misplaced = false;
    for (let i = 0; i < walked.records.length; i++) {
      const r = walked.records[i];
      if (r.type !== TYPE.OPT) continue;
      count++;
      opt = i;
      if (i < c.an + c.ns || query[r.start] !== 0) misplaced = true;
    }
    if (count > 1 || misplaced) return reply(RCODE.FORMERR, count ? { version: 0 } : undefined);
    if (opt >= 0) {
      const r = walked.records[opt];
      const options: Edns["options"] = [];
      for (let p = r.fixed + 10; p < r.end; ) {
        if (p + 4 > r.end) return reply(RCODE.FORMERR, { version: 0 });
        const code = (query[p] << 8) | query[p + 1];
        const len = (query[p + 2] << 8) | query[p + 3];
        if (p + 4 + len > r.end) return reply(RCODE.FORMERR, { version: 0 });
        options.push({ code, data: query.subarray(p + 4, p + 4 + len) });
        p += 4 + len;
      }
      edns = { version: query[r.fixed + 5], size: (query[r.fixed + 2] << 8) | query[r.fixed + 3], options };
      requestedSize = Math.max(512, edns.size);
      if (edns.version > 0) return reply(RCODE.BADVERS, { version: 0 });
    }
  }
  let ecs: ClientSubnet | undefined;
  if (edns) {
    let found: Uint8Array | undefined;
    for (const o of edns.options) {
      if (o.code !== ECS_CODE) continue;
      if (found) return reply(RCODE.FORMERR, { version: 0 });
      found = o.data;
    }
    if (found) {
      const parsed = parseClientSubnet(found);
      if (parsed === "malformed") return reply(RCODE.FORMERR, { version: 0 });
      ecs = parsed;
    }
  }
  const ednsOut = (scope: number): OptOut | undefined => (edns ? { version: 0, ecs, scope } : undefined);

  if (q.qtype === TYPE.OPT) return reply(RCODE.FORMERR, ednsOut(0));
  if (q.qclass !== 1) return reply(RCODE.REFUSED, ednsOut(0));

  // In the zone? Compare labels from the right, ASCII case-insensitively.
  const zone = server.zone;
  const key = textKey(q.bytes); // null when a label cannot be written as text (then it is in no zone name)
  if (key !== null) {
    if (key !== zone.origin && !key.endsWith(zone.dotOrigin)) return reply(RCODE.REFUSED, ednsOut(0));
  } else {
    const ol = zone.originLabels;
    const labels = q.labels;
    if (labels.length < ol.length) return reply(RCODE.REFUSED, ednsOut(0));
    for (let i = 1; i <= ol.length; i++)
      if (asciiLower(labels[labels.length - i]) !== ol[ol.length - i]) return reply(RCODE.REFUSED, ednsOut(0));
  }
  if (q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR) return reply(RCODE.REFUSED, ednsOut(0));
  if (q.qtype >= 128 && q.qtype !== TYPE.ANY) return reply(RCODE.NOTIMP, ednsOut(0), true);

  const compiled = compile(server);
  const plan = key === null ? compiled.nxdomain : planFor(compiled, zone, key, q.qtype);
  let director: DirectorAnswer | undefined;
  if (plan.director !== undefined) director = directorAnswer(compiled, server, q.qtype, ecs, client);

  const answerCount = plan.answers.length + (director?.tails.length ?? 0);
  const positive = answerCount > 0 && plan.rcode === RCODE.NOERROR;
  const tailored = director?.tailored ?? false;
  const scope = tailored ? director!.scope : 0;
  let ttl = zone.negativeTtl;
  if (positive) ttl = Math.min(plan.minTtl, director?.tails.length ? zone.director.ttl : Infinity);
  return assemble(head, {
    rcode: plan.rcode,
    aa: true,
    answers: plan.answers,
    director: director?.tails,
    directorOwner: plan.director ?? null,
    authorities: positive ? NONE : compiled.soa,
    additionals: plan.additionals,
    edns: ednsOut(scope),
    ttl,
    tailored,
    requestedSize,
    ecs,
    edges: director?.sites,
    texts: plan.answers.length ? plan.texts : undefined,
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Static plans: what a name and type get, worked out once.

function compile(server: Server): Compiled {
  let c = compiledFor.get(server);
  if (c) return c;
  const zone = server.zone;
  const soa = [staticPart(encodeName(zone.origin), zone.soa)];
  c = {
    plans: new Map(),
    nxdomain: { rcode: RCODE.NXDOMAIN, answers: [], minTtl: Infinity, texts: [], additionals: [] },
    soa,
    located: new Map(),
    siteTails: new Map(),
  };
  compiledFor.set(server, c);
  return c;
}

/**
 * The question's name as lowercase dotted text (no trailing dot; "" for the root), or null when a label holds a byte
 * outside printable ASCII or a dot: such a name cannot be written in the zone file, so it is in no zone.
 */
function textKey(question: Uint8Array): string | null {
  let key = "";
  let p = 0;
  for (;;) {
    const len = question[p++];
    if (len === 0) return key;
    if (p > 1) key += ".";
    for (const end = p + len; p < end; p++) {
      let b = question[p];
      if (b < 0x21 || b > 0x7e || b === 0x2e) return null;
      if (b >= 0x41 && b <= 0x5a) b += 32;
      key += String.fromCharCode(b);
    }
  }
}

function planFor(c: Compiled, zone: Zone, key: string, qtype: number): Plan {
  if (!zone.names.has(key)) return c.nxdomain;
  const cacheKey = `${qtype} ${key}`;
  let plan = c.plans.get(cacheKey);
  if (!plan) {
    plan = buildPlan(zone, key, qtype);
    if (c.plans.size >= MAX_PLANS) c.plans.clear();
    c.plans.set(cacheKey, plan);
  }
  return plan;
}

function buildPlan(zone: Zone, start: string, qtype: number): Plan {
  const answers: Part[] = [];
  const texts: string[] = [];
  const ttls: number[] = [];
  const additionals: Part[] = [];
  let rcode: number = RCODE.NOERROR;
  let director: Uint8Array | null | undefined;
  let owner: Uint8Array | null = null; // the query's name until a CNAME leads elsewhere
  let key = start;
  const push = (o: Uint8Array | null, r: ZoneRecord) => {
    answers.push(staticPart(o, r));
    texts.push(typeof r.data === "string" ? r.data : r.type);
    ttls.push(r.ttl);
  };
  for (let hop = 0; hop < 8; hop++) {
    if (key === zone.director.key) {
      const d = zone.director;
      if (qtype === TYPE.ANY) push(owner, rfc8482(d.ttl));
      else if (qtype === TYPE.A || qtype === TYPE.AAAA || qtype === TYPE.TXT) director = owner;
      break;
    }
    const node = zone.nodes.get(key);
    if (!node) {
      if (!zone.names.has(key)) rcode = RCODE.NXDOMAIN;
      break;
    }
    const cname = node.get("CNAME");
    if (cname && qtype !== TYPE.CNAME && qtype !== TYPE.ANY) {
      push(owner, cname[0]);
      const t = cname[0].data as string;
      const tk = asciiLower(t);
      if (tk !== zone.origin && !tk.endsWith(`.${zone.origin}`)) break;
      owner = encodeName(t);
      key = tk;
      continue;
    }
    if (qtype === TYPE.ANY) {
      push(owner, rfc8482(Math.min(...[...node.values()].flat().map((r) => r.ttl))));
      break;
    }
    const type = TYPE_NAMES[qtype];
    for (const r of (type && node.get(type)) || []) push(owner, r);
    if (type === "NS") for (const r of node.get("NS") ?? []) additionals.push(...glue(r.data as string, zone));
    break;
  }
  return { rcode, answers, minTtl: Math.min(Infinity, ...ttls), texts, director, additionals };
}

/** RFC 8482: a small HINFO instead of everything. */
function rfc8482(ttl: number): ZoneRecord {
  return { type: "HINFO", ttl, data: { cpu: "RFC8482", os: "" } };
}

function glue(target: string, zone: Zone): Part[] {
  const node = zone.nodes.get(asciiLower(target));
  if (!node) return [];
  const owner = encodeName(target);
  return [...(node.get("A") ?? []), ...(node.get("AAAA") ?? [])].map((r) => staticPart(owner, r));
}

/** A zone record in wire form through dns-packet (owner encoded separately). */
function staticPart(owner: Uint8Array | null, r: ZoneRecord): Part {
  const data = r.type === "TXT" ? (r.data as Uint8Array[]).map((b) => Buffer.from(b)) : r.data;
  const rr = dnsPacket.encode({ type: "response", answers: [{ name: ".", type: r.type, ttl: r.ttl, data } as dnsPacket.Answer] });
  // 12 header bytes, then the root owner (one zero byte), then the rest of the record.
  return { owner, tail: new Uint8Array(rr.subarray(13)) };
}

/** A name in wire form, uncompressed (as dns-packet writes it). */
function encodeName(name: string): Uint8Array {
  const rr = dnsPacket.encode({ type: "response", answers: [{ name, type: "A", ttl: 0, data: "0.0.0.0" }] });
  return new Uint8Array(rr.subarray(12, rr.length - 14));
}

const TYPE_NAMES: Record<number, string> = { 1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 257: "CAA" };

// ---------------------------------------------------------------------------------------------------------------
// The director: tailored records, cached per located network.

function directorAnswer(c: Compiled, server: Server, qtype: number, ecs: ClientSubnet | undefined, client: Uint8Array | null): DirectorAnswer {
  const loc = locate(c, ecs, client, server.geoip);
  const d = server.zone.director;
  if (qtype === TYPE.TXT) {
    if (!loc.txt) {
      const text = formatTxt(d.txt, { ip: loc.ip, family: loc.family, info: loc.geo?.info ?? {} });
      loc.txt = { tails: [txtTail(splitTxt(text), d.ttl)], tailored: loc.tailor, scope: loc.geo?.prefix ?? 0 };
    }
    return loc.txt;
  }
  const family = qtype === TYPE.A ? 4 : 6;
  const service = serviceSetsOf(c, server);
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
export function serviceSets(server: Server): ServiceSets {
  return serviceSetsOf(compile(server), server);
}

function serviceSetsOf(c: Compiled, server: Server): ServiceSets {
  const h = server.health;
  const version = h ? h.version : 0;
  if (c.service && c.service.version === version) return c.service;
  const sites = server.zone.sites;
  const of = (family: 4 | 6) => {
    const eligible = sites.filter((s) => s.weight > 0 && (family === 4 ? s.ipv4 : s.ipv6));
    if (!h || eligible.length === 0) return { edges: eligible, failOpen: false };
    return h.answerable(eligible);
  };
  const v4 = of(4);
  const v6 = of(6);
  c.service = { version, v4: v4.edges, v6: v6.edges, failOpen4: v4.failOpen, failOpen6: v6.failOpen };
  return c.service;
}

/** Where the client is: the ECS address if given (SOURCE 0: nowhere), else the connecting address. Cached. */
function locate(c: Compiled, ecs: ClientSubnet | undefined, client: Uint8Array | null, geoip: GeoIp): Located {
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

function siteTail(c: Compiled, s: Site, family: 4 | 6, ttl: number): Uint8Array {
  let t = c.siteTails.get(s);
  if (!t) c.siteTails.set(s, (t = {}));
  if (family === 4) return (t.a ??= rrTail(TYPE.A, ttl, parseIPv4(s.ipv4!)!));
  return (t.aaaa ??= rrTail(TYPE.AAAA, ttl, parseIPv6(s.ipv6!)!));
}

function txtTail(strings: Uint8Array[], ttl: number): Uint8Array {
  let len = 0;
  for (const s of strings) len += 1 + s.length;
  const rdata = new Uint8Array(len);
  let p = 0;
  for (const s of strings) {
    rdata[p++] = s.length;
    rdata.set(s, p);
    p += s.length;
  }
  return rrTail(TYPE.TXT, ttl, rdata);
}

/** TYPE, CLASS IN, TTL, RDLENGTH, RDATA. */
function rrTail(type: number, ttl: number, rdata: Uint8Array): Uint8Array {
  const out = new Uint8Array(10 + rdata.length);
  out[0] = type >> 8;
  out[1] = type;
  out[3] = 1;
  out[4] = ttl >>> 24;
  out[5] = ttl >>> 16;
  out[6] = ttl >>> 8;
  out[7] = ttl;
  out[8] = rdata.length >> 8;
  out[9] = rdata.length;
  out.set(rdata, 10);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Assembly: header, the question as sent, the records, the OPT.

interface Head {
  query: Uint8Array;
  /** Opcode and RD as received. */
  flags: number;
  udpSize: number;
  q: RawQuestion | null;
}

interface OptOut {
  version: number;
  ecs?: ClientSubnet;
  scope?: number;
}

interface Body {
  rcode: number;
  aa: boolean;
  answers: Part[];
  director?: Uint8Array[];
  directorOwner: Uint8Array | null;
  authorities: Part[];
  additionals: Part[];
  edns?: OptOut;
  ttl: number;
  tailored: boolean;
  requestedSize: number;
  ecs?: ClientSubnet;
  edges?: Site[];
  texts?: string[];
}

const NONE: Part[] = [];

function errorReply(head: Head, rcode: number, edns: OptOut | undefined, aa: boolean, requestedSize: number): Answer {
  return assemble(head, {
    rcode,
    aa,
    answers: NONE,
    directorOwner: null,
    authorities: NONE,
    additionals: NONE,
    edns,
    ttl: 0,
    tailored: false,
    requestedSize,
    ecs: edns?.ecs,
  });
}

function assemble(head: Head, b: Body): Answer {
  const qb = head.q?.bytes;
  const qnameLen = qb ? qb.length - 4 : 0;
  const partLen = (p: Part) => (p.owner ? p.owner.length : qnameLen) + p.tail.length;
  let len = 12 + (qb?.length ?? 0);
  for (const p of b.answers) len += partLen(p);
  const dOwnerLen = b.directorOwner ? b.directorOwner.length : qnameLen;
  if (b.director) for (const t of b.director) len += dOwnerLen + t.length;
  for (const p of b.authorities) len += partLen(p);
  for (const p of b.additionals) len += partLen(p);
  let ecsData: Uint8Array | undefined;
  if (b.edns) {
    len += 11;
    if (b.edns.ecs) {
      ecsData = encodeClientSubnet(b.edns.ecs, b.edns.scope ?? 0);
      len += 4 + ecsData.length;
    }
  }
  const out = new Uint8Array(len);
  const id0 = head.query[0];
  const id1 = head.query[1];
  const flags = QR | head.flags | (b.aa ? AA : 0) | (b.rcode & 0xf);
  out[0] = id0;
  out[1] = id1;
  out[2] = flags >> 8;
  out[3] = flags;
  out[5] = qb ? 1 : 0;
  const an = b.answers.length + (b.director?.length ?? 0);
  const ar = b.additionals.length + (b.edns ? 1 : 0);
  out[6] = an >> 8;
  out[7] = an;
  out[8] = b.authorities.length >> 8;
  out[9] = b.authorities.length;
  out[10] = ar >> 8;
  out[11] = ar;
  let p = 12;
  if (qb) {
    out.set(qb, 12);
    p += qb.length;
  }
  const qname = qb ? qb.subarray(0, qnameLen) : new Uint8Array(0);
  const write = (owner: Uint8Array | null, tail: Uint8Array) => {
    const o = owner ?? qname;
    out.set(o, p);
    p += o.length;
    out.set(tail, p);
    p += tail.length;
  };
  for (const x of b.answers) write(x.owner, x.tail);
  if (b.director) for (const t of b.director) write(b.directorOwner, t);
  for (const x of b.authorities) write(x.owner, x.tail);
  for (const x of b.additionals) write(x.owner, x.tail);
  if (b.edns) {
    // OPT: root owner, TYPE 41, CLASS = our payload size, TTL = extended RCODE, version, flags; then the options.
    p++; // root
    out[p++] = 0;
    out[p++] = TYPE.OPT;
    out[p++] = head.udpSize >> 8;
    out[p++] = head.udpSize;
    out[p++] = b.rcode >> 4;
    out[p++] = b.edns.version;
    p += 2; // flags 0
    const rdlen = ecsData ? 4 + ecsData.length : 0;
    out[p++] = rdlen >> 8;
    out[p++] = rdlen;
    if (ecsData) {
      out[p++] = 0;
      out[p++] = ECS_CODE;
      out[p++] = ecsData.length >> 8;
      out[p++] = ecsData.length;
      out.set(ecsData, p);
    }
  }
  const errorRcode = b.rcode !== RCODE.NOERROR && b.rcode !== RCODE.NXDOMAIN;
  return {
    bytes: out,
    rcode: b.rcode,
    ttl: errorRcode ? 0 : b.ttl,
    tailored: b.tailored,
    requestedSize: b.requestedSize,
    qtype: head.q ? head.q.qtype : -1,
    question: head.q,
    ecs: b.ecs,
    edges: b.edges,
    records: b.texts,
  };
}
