/**
 * Wire assembly of a reply: the header (ID, opcode and RD echoed; QR, AA, RCODE), the question exactly as sent, the
 * records' pieces copied in, and the OPT (payload size, extended RCODE, ECS echo with our scope). Pure.
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
  return out;
}

/** An error reply: the header and question (if any), no records, an OPT when given. */
export function errorBytes(head: Head, rcode: number, edns: OptOut | undefined, aa: boolean): Uint8Array {
  return assemble(head, { rcode, aa, answers: NONE, directorOwner: null, authorities: NONE, additionals: NONE, edns });
}
