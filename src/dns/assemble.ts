/**
 * Wire assembly of a reply: the header (ID, opcode and RD echoed; QR, AA, RCODE), the question exactly as sent, the
 * records' pieces copied in, and the OPT (payload size, extended RCODE, ECS echo with our scope). Owner names are
 * compressed (RFC 1035 §4.1.4): the query's own name is a pointer to the question, other names point at their longest
 * suffix in the question (the zone's origin is always there), and the next records of an RRset at the first. RDATA
 * stays as stored. Pure.
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
  // The last owner written out (an RRset's records share one): later records of it point there.
  let lastOwner: Uint8Array | null = null;
  let lastAt = 0;
  const write = (owner: Uint8Array | null, tail: Uint8Array) => {
    if (owner === null && qb) {
      out[p++] = 0xc0; // a pointer to the question's name at offset 12
      out[p++] = 12;
    } else if (owner === lastOwner && lastAt < 0x4000) {
      out[p++] = 0xc0 | (lastAt >> 8);
      out[p++] = lastAt & 0xff;
    } else if (owner) {
      lastOwner = owner;
      lastAt = p;
      p = writeName(out, p, owner, qb, qnameLen);
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

/**
 * Writes `name` at `p`, its longest suffix that ends the question's name replaced by a pointer there (every name in
 * the zone shares at least the origin with the question); returns the new offset. No allocation: the hot path.
 */
function writeName(out: Uint8Array, p: number, name: Uint8Array, qb: Uint8Array | undefined, qnameLen: number): number {
  for (let i = 0; name[i] !== 0; i += name[i] + 1) {
    const rest = name.length - i; // this suffix, with its root byte
    const at = qnameLen - rest;
    if (qb && at >= 0 && labelStart(qb, at) && sameName(name, i, qb, at, rest)) {
      out.set(name.subarray(0, i), p);
      p += i;
      out[p++] = 0xc0 | ((12 + at) >> 8);
      out[p++] = (12 + at) & 0xff;
      return p;
    }
  }
  out.set(name, p);
  return p + name.length;
}

/** Whether a label starts at `at` in the question's name. */
function labelStart(qb: Uint8Array, at: number): boolean {
  let j = 0;
  while (j < at && qb[j] !== 0) j += qb[j] + 1;
  return j === at;
}

/** `n` bytes of two names equal, ASCII case aside. */
function sameName(a: Uint8Array, i: number, b: Uint8Array, j: number, n: number): boolean {
  for (let k = 0; k < n; k++) {
    let x = a[i + k];
    let y = b[j + k];
    if (x === y) continue;
    if (x >= 0x41 && x <= 0x5a) x += 32;
    if (y >= 0x41 && y <= 0x5a) y += 32;
    if (x !== y) return false;
  }
  return true;
}

/** An error reply: the header and question (if any), no records, an OPT when given. */
export function errorBytes(head: Head, rcode: number, edns: OptOut | undefined, aa: boolean): Uint8Array {
  return assemble(head, { rcode, aa, answers: NONE, directorOwner: null, authorities: NONE, additionals: NONE, edns });
}
