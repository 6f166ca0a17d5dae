/**
 * The authoritative answer to one DNS query in wire format: the whole protocol checklist (ID/opcode/RD/question
 * echoed byte for byte, AA, NXDOMAIN vs NODATA with the SOA, REFUSED outside the zone, FORMERR/NOTIMP/BADVERS,
 * EDNS and ECS) and the director's tailored A/AAAA/TXT. Pure: bytes and a client address in, bytes out.
 */
import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import type { GeoIp } from "../geoip/geoip.ts";
import { formatIp } from "../net/ip.ts";
import type { GeoResult } from "../geoip/types.ts";
import { ECS_CODE, encodeClientSubnet, parseClientSubnet, type ClientSubnet } from "./ecs.ts";
import { selectEdges } from "./select.ts";
import { formatTxt, splitTxt } from "./txt.ts";
import { AA, QR, RCODE, RD, asciiLower, counts, readQuestion, walkRecords, type RawQuestion } from "./wire.ts";
import type { Zone, ZoneRecord } from "./zone.ts";

/** What the handler needs besides the query. */
export interface Server {
  zone: Zone;
  geoip: GeoIp;
  /** EDNS payload size we advertise. */
  udpSize: number;
  random: () => number;
}

/** An answer and what HTTP caching needs to know about it. */
export interface Answer {
  bytes: Uint8Array;
  rcode: number;
  /** Seconds the answer may be cached: smallest answer TTL, or the negative TTL; 0 for errors. */
  ttl: number;
  /** Depends on the client's address (mark it private in HTTP). */
  tailored: boolean;
}

const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, OPT: 41, IXFR: 251, AXFR: 252, ANY: 255 } as const;

type Rec = dnsPacket.Answer;

interface Edns {
  version: number;
  options: { code: number; data: Uint8Array }[];
}

/** Answers one query for `client` (the connecting address, bytes; null when unknown). Null: drop it (not a query). */
export function answerQuery(query: Uint8Array, client: Uint8Array | null, server: Server): Answer | null {
  if (query.length < 12) return null;
  const id = (query[0] << 8) | query[1];
  const flags = (query[2] << 8) | query[3];
  if (flags & QR) return null; // a response: never answer one (loops)
  const opcode = (flags >> 11) & 0xf;
  const base = { id, flags: (opcode << 11) | (flags & RD), udpSize: server.udpSize };
  const c = counts(query);
  const q = c.qd === 1 ? readQuestion(query) : null;
  const reply = (rcode: number, o: Partial<Reply> = {}) => encodeReply({ ...base, q, rcode, ...o });
  if (opcode !== 0) return reply(RCODE.NOTIMP);
  if (!q) return reply(RCODE.FORMERR);

  // EDNS: at most one OPT, in the additional section, root owner.
  const walked = walkRecords(query, q.end, c.an + c.ns + c.ar);
  if (!walked) return reply(RCODE.FORMERR);
  const opts = walked.records.filter((r) => r.type === TYPE.OPT);
  let edns: Edns | undefined;
  if (opts.length > 1 || opts.some((r) => walked.records.indexOf(r) < c.an + c.ns || query[r.start] !== 0))
    return reply(RCODE.FORMERR, { edns: opts.length ? { version: 0 } : undefined });
  if (opts.length === 1) {
    const r = opts[0];
    const options: Edns["options"] = [];
    for (let p = r.fixed + 10; p < r.end; ) {
      if (p + 4 > r.end) return reply(RCODE.FORMERR, { edns: { version: 0 } });
      const code = (query[p] << 8) | query[p + 1];
      const len = (query[p + 2] << 8) | query[p + 3];
      if (p + 4 + len > r.end) return reply(RCODE.FORMERR, { edns: { version: 0 } });
      options.push({ code, data: query.subarray(p + 4, p + 4 + len) });
      p += 4 + len;
    }
    edns = { version: query[r.fixed + 5], options };
    if (edns.version > 0) return reply(RCODE.BADVERS, { edns: { version: 0 } });
  }
  let ecs: ClientSubnet | undefined;
  const ecsOptions = edns?.options.filter((o) => o.code === ECS_CODE) ?? [];
  if (ecsOptions.length > 1) return reply(RCODE.FORMERR, { edns });
  if (ecsOptions.length === 1) {
    const parsed = parseClientSubnet(ecsOptions[0].data);
    if (parsed === "malformed") return reply(RCODE.FORMERR, { edns: { version: 0 } });
    ecs = parsed;
  }
  const ednsOut = (scope: number) => (edns ? { version: 0, ecs, scope } : undefined);

  if (q.qtype === TYPE.OPT) return reply(RCODE.FORMERR, { edns: ednsOut(0) });
  if (q.qclass !== 1) return reply(RCODE.REFUSED, { edns: ednsOut(0) });

  // In the zone? Compare labels from the right, ASCII case-insensitively.
  const zone = server.zone;
  const ol = zone.originLabels;
  const labels = q.labels;
  if (labels.length < ol.length) return reply(RCODE.REFUSED, { edns: ednsOut(0) });
  for (let i = 1; i <= ol.length; i++)
    if (asciiLower(labels[labels.length - i]) !== ol[ol.length - i]) return reply(RCODE.REFUSED, { edns: ednsOut(0) });
  if (q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR) return reply(RCODE.REFUSED, { edns: ednsOut(0) });
  if (q.qtype >= 128 && q.qtype !== TYPE.ANY) return reply(RCODE.NOTIMP, { edns: ednsOut(0), aa: true });

  // Labels that cannot be written as text cannot be in the zone.
  const safe = labels.every((l) => /^[\x21-\x2d\x2f-\x7e]+$/.test(l));
  const owner = safe ? labels.join(".") : "";
  let key = safe ? asciiLower(owner) : "";

  const answers: Rec[] = [];
  const additionals: Rec[] = [];
  let tailored = false;
  let scope = 0;
  let rcode: number = RCODE.NOERROR;
  let name = owner;
  const located = new Lazy(() => locate(ecs, client, server.geoip));
  for (let hop = 0; hop < 8; hop++) {
    if (key === zone.director.key) {
      const added = directorRecords(q.qtype, name, server, located.get());
      answers.push(...added.records);
      if (added.tailored) {
        tailored = true;
        scope = Math.max(scope, added.scope);
      }
      break;
    }
    const node = key ? zone.nodes.get(key) : undefined;
    if (!node) {
      if (!key || !zone.names.has(key)) rcode = RCODE.NXDOMAIN;
      break;
    }
    const cname = node.get("CNAME");
    if (cname && q.qtype !== TYPE.CNAME && q.qtype !== TYPE.ANY) {
      answers.push(toRec(name, cname[0]));
      const t = cname[0].data as string;
      const tk = asciiLower(t);
      if (tk !== zone.origin && !tk.endsWith(`.${zone.origin}`)) break;
      name = t;
      key = tk;
      continue;
    }
    if (q.qtype === TYPE.ANY) {
      answers.push(rfc8482(name, Math.min(...[...node.values()].flat().map((r) => r.ttl))));
      break;
    }
    const type = typeName(q.qtype);
    for (const r of (type && node.get(type)) || []) answers.push(toRec(name, r));
    if (type === "NS") for (const r of node.get("NS") ?? []) additionals.push(...glue(r.data as string, zone));
    break;
  }
  const authorities: Rec[] = [];
  const positive = answers.length > 0 && rcode === RCODE.NOERROR;
  if (!positive) authorities.push(toRec(zone.origin, zone.soa));
  const ttl = positive ? Math.min(...answers.map((a) => (a as { ttl: number }).ttl)) : zone.negativeTtl;
  return encodeReply({
    ...base,
    q,
    rcode,
    aa: true,
    answers,
    authorities,
    additionals,
    edns: edns ? { version: 0, ecs, scope: tailored ? scope : 0 } : undefined,
    ttl,
    tailored,
  });
}

/** Where the client is: the ECS address if given (SOURCE 0: nowhere), else the connecting address. */
function locate(ecs: ClientSubnet | undefined, client: Uint8Array | null, geoip: GeoIp) {
  if (ecs && ecs.source === 0) return { ip: ecs.family === 1 ? "0.0.0.0" : "::", family: (ecs.family === 1 ? 4 : 6) as 4 | 6, geo: null, tailor: false };
  const bytes = ecs ? ecs.address.subarray(0, ecs.family === 1 ? 4 : 16) : client;
  if (!bytes) return { ip: "0.0.0.0", family: 4 as const, geo: null, tailor: false };
  const geo: GeoResult | null = geoip.lookup(bytes);
  return { ip: formatIp(bytes), family: (bytes.length === 4 ? 4 : 6) as 4 | 6, geo, tailor: true };
}

function directorRecords(qtype: number, name: string, server: Server, loc: ReturnType<typeof locate>) {
  const d = server.zone.director;
  const records: Rec[] = [];
  const place = loc.geo?.info ?? null;
  const pick = (family: 4 | 6) =>
    selectEdges(server.zone.sites, place, {
      count: d.answers,
      family,
      tieMargin: d.tieMargin,
      defaults: d.defaults,
      random: server.random,
    });
  if (qtype === TYPE.ANY) return { records: [rfc8482(name, d.ttl)], tailored: false, scope: 0 };
  if (qtype === 1) for (const s of pick(4)) records.push({ name, type: "A", ttl: d.ttl, data: s.ipv4! });
  else if (qtype === 28) for (const s of pick(6)) records.push({ name, type: "AAAA", ttl: d.ttl, data: s.ipv6! });
  else if (qtype === 16) {
    const text = formatTxt(d.txt, { ip: loc.ip, family: loc.family, info: loc.geo?.info ?? {} });
    records.push({ name, type: "TXT", ttl: d.ttl, data: splitTxt(text).map((b) => Buffer.from(b)) });
    return { records, tailored: loc.tailor, scope: loc.geo?.prefix ?? 0 };
  } else return { records, tailored: false, scope: 0 };
  return { records, tailored: loc.tailor, scope: loc.geo?.locationPrefix ?? 0 };
}

/** RFC 8482: a small HINFO instead of everything. */
function rfc8482(name: string, ttl: number): Rec {
  return { name, type: "HINFO", ttl, data: { cpu: "RFC8482", os: "" } };
}

function glue(target: string, zone: Zone): Rec[] {
  const node = zone.nodes.get(asciiLower(target));
  if (!node) return [];
  return [...(node.get("A") ?? []), ...(node.get("AAAA") ?? [])].map((r) => toRec(target, r));
}

function toRec(name: string, r: ZoneRecord): Rec {
  const data = r.type === "TXT" ? (r.data as Uint8Array[]).map((b) => Buffer.from(b)) : r.data;
  return { name, type: r.type, ttl: r.ttl, data } as Rec;
}

const TYPE_NAMES: Record<number, string> = { 1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 257: "CAA" };
function typeName(qtype: number): string | undefined {
  return TYPE_NAMES[qtype];
}

class Lazy<T> {
  #f: () => T;
  #v: { value: T } | undefined;
  constructor(f: () => T) {
    this.#f = f;
  }
  get(): T {
    this.#v ??= { value: this.#f() };
    return this.#v.value;
  }
}

interface Reply {
  id: number;
  udpSize: number;
  flags: number;
  q: RawQuestion | null;
  rcode: number;
  aa?: boolean;
  answers?: Rec[];
  authorities?: Rec[];
  additionals?: Rec[];
  edns?: { version: number; ecs?: ClientSubnet; scope?: number };
  ttl?: number;
  tailored?: boolean;
}

/** Encodes with dns-packet, then puts the query's question bytes back in unchanged. */
function encodeReply(r: Reply): Answer {
  const additionals: Rec[] = [...(r.additionals ?? [])];
  if (r.edns) {
    const options = r.edns.ecs ? [{ code: ECS_CODE, data: Buffer.from(encodeClientSubnet(r.edns.ecs, r.edns.scope ?? 0)) }] : [];
    additionals.push({
      name: ".",
      type: "OPT",
      udpPayloadSize: r.udpSize,
      extendedRcode: r.rcode >> 4,
      ednsVersion: 0,
      flags: 0,
      options,
    } as unknown as Rec);
  }
  const body = dnsPacket.encode({
    id: r.id,
    type: "response",
    flags: r.flags | (r.aa ? AA : 0) | (r.rcode & 0xf),
    questions: [],
    answers: r.answers ?? [],
    authorities: r.authorities ?? [],
    additionals,
  });
  const qb = r.q?.bytes ?? new Uint8Array(0);
  const out = new Uint8Array(body.length + qb.length);
  out.set(body.subarray(0, 12), 0);
  out.set(qb, 12);
  out.set(body.subarray(12), 12 + qb.length);
  out[5] = r.q ? 1 : 0;
  const errorRcode = r.rcode !== RCODE.NOERROR && r.rcode !== RCODE.NXDOMAIN;
  return { bytes: out, rcode: r.rcode, ttl: errorRcode ? 0 : (r.ttl ?? 0), tailored: r.tailored ?? false };
}
