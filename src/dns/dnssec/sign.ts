/**
 * Online signing (RFC 4034 §3, RFC 6605): RRSIG records over RRsets with the zone's active keys — the DNSKEY set by
 * KSKs and CSKs, everything else by ZSKs and CSKs. Signatures hold for `validity` seconds from a window start that
 * moves every validity / 2 (an hour of clock skew allowed before it), so callers cache them per window. Pure apart
 * from the keys' sign function and the injected clock.
 */
import { TYPE } from "../codes.ts";
import type { Part } from "../records.ts";
import { rrTail, tailType } from "../records.ts";
import { compareRdata, labelsOf } from "./canonical.ts";
import { ALGORITHM_ECDSAP256SHA256, type ZoneKey } from "./keys.ts";

/** Seconds before the window start a signature is already valid (resolvers' clocks run slow or fast). */
const SKEW = 3600;

export class ZoneSigner {
  /** The zone's name, lowercase wire form (the signer's name). */
  readonly origin: Uint8Array;
  readonly keys: ZoneKey[];
  private readonly validity: number;
  private readonly now: () => number;
  /** Signatures made, since the start (for metrics). */
  signatures = 0;

  constructor(origin: Uint8Array, keys: ZoneKey[], validitySeconds: number, now: () => number = Date.now) {
    this.origin = origin;
    this.keys = keys;
    this.validity = validitySeconds;
    this.now = now;
  }

  /** The current window's start (seconds): signatures cached under another are made anew. */
  window(): number {
    const half = Math.max(1, Math.floor(this.validity / 2));
    return Math.floor(this.now() / 1000 / half) * half;
  }

  /** RRSIG tails over one RRset: its canonical owner, type, TTL and RDATAs (duplicates are one record). */
  rrsigs(owner: Uint8Array, type: number, ttl: number, rdatas: Uint8Array[]): Uint8Array[] {
    const start = this.window();
    const inception = start - SKEW;
    const expiration = start + this.validity;
    const sorted = [...rdatas].sort(compareRdata).filter((r, i, all) => i === 0 || compareRdata(r, all[i - 1]) !== 0);
    const signing = this.keys.filter((k) => k.active && (type === TYPE.DNSKEY ? k.role !== "zsk" : k.role !== "ksk"));
    const out: Uint8Array[] = [];
    // RFC 4034 §3.1.3: the labels of the owner, a leading "*" not counted (a wildcard's answers are signed as it).
    const labels = labelsOf(owner);
    const count = labels.length - (labels[0]?.length === 1 && labels[0][0] === 0x2a ? 1 : 0);
    for (const key of signing) {
      const head = rrsigHead(type, count, ttl, expiration, inception, key.tag, this.origin);
      let len = head.length;
      for (const r of sorted) len += owner.length + 10 + r.length;
      const data = new Uint8Array(len);
      data.set(head, 0);
      let p = head.length;
      for (const r of sorted) {
        data.set(owner, p);
        p += owner.length;
        data.set(rrTail(type, ttl, r).subarray(0, 10), p); // TYPE, CLASS, TTL, RDLENGTH
        p += 10;
        data.set(r, p);
        p += r.length;
      }
      const signature = key.sign(data);
      this.signatures++;
      const rdata = new Uint8Array(head.length + signature.length);
      rdata.set(head, 0);
      rdata.set(signature, head.length);
      out.push(rrTail(TYPE.RRSIG, ttl, rdata));
    }
    return out;
  }

  /**
   * The parts with an RRSIG after each RRset (consecutive parts of one owner and type); `ownerOf` gives a part's
   * canonical owner name.
   */
  signParts(parts: Part[], ownerOf: (p: Part) => Uint8Array): Part[] {
    const out: Part[] = [];
    for (let i = 0; i < parts.length; ) {
      let j = i + 1;
      const type = tailType(parts[i].tail);
      while (j < parts.length && parts[j].owner === parts[i].owner && tailType(parts[j].tail) === type) j++;
      const set = parts.slice(i, j);
      out.push(...set);
      const ttl = tailTtl(set[0].tail);
      for (const tail of this.rrsigs(ownerOf(set[0]), type, ttl, set.map((p) => p.tail.subarray(10))))
        out.push({ owner: set[0].owner, tail });
      i = j;
    }
    return out;
  }
}

/** A tail's TTL. */
export const tailTtl = (t: Uint8Array): number => ((t[4] << 24) | (t[5] << 16) | (t[6] << 8) | t[7]) >>> 0;

/** RRSIG RDATA up to the signature: type covered, algorithm, labels, original TTL, expiration, inception, tag, signer. */
function rrsigHead(type: number, labels: number, ttl: number, expiration: number, inception: number, tag: number, signer: Uint8Array): Uint8Array {
  const out = new Uint8Array(18 + signer.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, type);
  out[2] = ALGORITHM_ECDSAP256SHA256;
  out[3] = labels;
  v.setUint32(4, ttl);
  v.setUint32(8, expiration >>> 0);
  v.setUint32(12, inception >>> 0);
  v.setUint16(16, tag);
  out.set(signer, 18);
  return out;
}
