/**
 * Wire assembly of a reply: the header (ID, opcode and RD echoed; QR, AA, RCODE), the question exactly as sent, the
 * records' pieces copied in, and the OPT (payload size, extended RCODE, ECS echo with our scope). Owner names are
 * compressed (RFC 1035 §4.1.4): the query's own name is a pointer to the question, other names point at the longest
 * suffix already written (the zone's origin is always in the question). RDATA stays as stored. Pure.
 */
import { TYPE } from "./codes.ts";
import { ECS_CODE, encodeClientSubnet, type ClientSubnet } from "./ecs.ts";
import type { Part } from "./records.ts";
import { AA, QR, type RawQuestion } from "./wire.ts";

/** What the reply copies from the query. */
export interface Head {
  query: Uint8Array;
  /** Opcode and RD as received. */
  flags: number;
  /** EDNS payload size we advertise. */
  udpSize: number;
  q: RawQuestion | null;
}

/** The OPT of a reply. */
export interface OptOut {
  version: number;
  ecs?: ClientSubnet;
  scope?: number;
  /** The DO bit, echoed (RFC 3225). */
  dnssecOk?: boolean;
}

/** The records and flags of a reply. */
export interface Body {
  rcode: number;
  aa: boolean;
  answers: Part[];
  /** The director's tails, after `answers`, all with `directorOwner` (null: the query's name). */
  director?: Uint8Array[];
  directorOwner: Uint8Array | null;
  authorities: Part[];
  additionals: Part[];
  edns?: OptOut;
}

export const NONE: Part[] = [];

/** The reply's bytes. */
export function assemble(head: Head, b: Body): Uint8Array {
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
  const flags = QR | head.flags | (b.aa ? AA : 0) | (b.rcode & 0xf);
  out[0] = head.query[0];
  out[1] = head.query[1];
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
  let names: Map<string, number> | undefined;
  const write = (owner: Uint8Array | null, tail: Uint8Array) => {
    if (owner === null && qb) {
      out[p++] = 0xc0; // a pointer to the question's name at offset 12
      out[p++] = 12;
    } else if (owner) {
      names ??= questionNames(qb, qnameLen);
      p = writeName(out, p, owner, names);
    }
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
    out[p++] = b.edns.dnssecOk ? 0x80 : 0; // flags: DO
    p++;
    const rdlen = ecsData ? 4 + ecsData.length : 0;
    out[p++] = rdlen >> 8;
    out[p++] = rdlen;
    if (ecsData) {
      out[p++] = 0;
      out[p++] = ECS_CODE;
      out[p++] = ecsData.length >> 8;
      out[p++] = ecsData.length;
      out.set(ecsData, p);
      p += ecsData.length;
    }
  }
  return p === out.length ? out : out.subarray(0, p);
}

/** Compression targets: every suffix of the question's name (lowercase key → offset). */
function questionNames(qb: Uint8Array | undefined, qnameLen: number): Map<string, number> {
  const names = new Map<string, number>();
  if (qb) for (let i = 0; qb[i] !== 0 && i < qnameLen; i += qb[i] + 1) names.set(suffixKey(qb, i), 12 + i);
  return names;
}

/** A name from `i` as a lowercase key (labels with their length bytes, as latin1 text). */
function suffixKey(name: Uint8Array, i: number): string {
  let k = "";
  for (; name[i] !== 0; i++) {
    const b = name[i];
    k += String.fromCharCode(b >= 0x41 && b <= 0x5a ? b + 32 : b);
  }
  return k;
}

/** Writes an uncompressed name at `p`, pointing at the longest suffix written before; returns the new offset. */
function writeName(out: Uint8Array, p: number, name: Uint8Array, names: Map<string, number>): number {
  const start = p;
  for (let i = 0; ; i += name[i] + 1) {
    if (name[i] === 0) {
      out[p++] = 0;
      break;
    }
    const at = names.get(suffixKey(name, i));
    if (at !== undefined) {
      out[p++] = 0xc0 | (at >> 8);
      out[p++] = at & 0xff;
      break;
    }
    out.set(name.subarray(i, i + name[i] + 1), p);
    p += name[i] + 1;
  }
  // What was written in full can be pointed at by later names (pointers reach 14 bits).
  for (let i = 0; start + i < p && name[i] !== 0 && start + i < 0x4000; i += name[i] + 1) {
    const k = suffixKey(name, i);
    if (!names.has(k)) names.set(k, start + i);
    if ((out[start + i] & 0xc0) === 0xc0) break;
  }
  return p;
}

/** An error reply: the header and question (if any), no records, an OPT when given. */
export function errorBytes(head: Head, rcode: number, edns: OptOut | undefined, aa: boolean): Uint8Array {
  return assemble(head, { rcode, aa, answers: NONE, directorOwner: null, authorities: NONE, additionals: NONE, edns });
}
