/**
 * Resource records as wire pieces: an owner name and a "tail" (TYPE, CLASS, TTL, RDLENGTH, RDATA) that the answer
 * core copies into replies as they are. Static records are encoded once through dns-packet. Pure.
 */
import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import { TYPE } from "./codes.ts";
import type { ZoneRecord } from "./zone.ts";

/** One resource record in wire form: owner name (null: the query's own name, case as sent) and the rest. */
export interface Part {
  owner: Uint8Array | null;
  /** TYPE, CLASS, TTL, RDLENGTH and RDATA. */
  tail: Uint8Array;
}

/** A zone record's tail through dns-packet (its owner is written separately). */
export function recordTail(r: ZoneRecord): Uint8Array {
  const data = r.type === "TXT" ? (r.data as Uint8Array[]).map((b) => Buffer.from(b)) : r.data;
  const rr = dnsPacket.encode({ type: "response", answers: [{ name: ".", type: r.type, ttl: r.ttl, data } as dnsPacket.Answer] });
  // 12 header bytes, then the root owner (one zero byte), then the rest of the record.
  return new Uint8Array(rr.subarray(13));
}

/** A zone record as a Part. */
export function staticPart(owner: Uint8Array | null, r: ZoneRecord): Part {
  return { owner, tail: recordTail(r) };
}

/** TYPE, CLASS IN, TTL, RDLENGTH, RDATA. */
export function rrTail(type: number, ttl: number, rdata: Uint8Array): Uint8Array {
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

/** A TXT record's tail from its character-strings (each at most 255 bytes). */
export function txtTail(strings: Uint8Array[], ttl: number): Uint8Array {
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

/** The type number of a tail. */
export const tailType = (tail: Uint8Array): number => (tail[0] << 8) | tail[1];
