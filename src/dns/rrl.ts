/**
 * Response rate limiting for UDP, as Knot, NSD and BIND do it: each client network (an IPv4 /24, an IPv6 /56 by
 * default) gets `rate` responses a second, with bursts up to `burst`; past that its queries are dropped, except
 * every `slip`-th, which is answered empty with TC=1 — a real resolver then retries over TCP (which is not limited),
 * while the victim of a spoofed flood gets nothing bigger than the query. Listed networks are exempt. Pure: the
 * clock is injected; the table of networks is bounded.
 */
import type { RrlConfig } from "../config/dns-schema.ts";
import { inCidr, parseCidr, type Cidr, type IpBytes } from "../net/ip.ts";

export interface RrlSettings {
  /** Responses per second per client network; 0 turns the limiter off. */
  rate: number;
  /** Responses a network may get at once after a quiet spell. */
  burst: number;
  /** Every slip-th limited response is sent empty with TC=1 (0: none, 1: all). */
  slip: number;
  ipv4Prefix: number;
  ipv6Prefix: number;
  exempt: Cidr[];
  /** Networks tracked at once; the oldest are forgotten first. */
  tableSize: number;
}

/** The settings from [dns.rrl] for one of `processes` processes sharing the node's budget. */
export function rrlSettings(c: RrlConfig, processes = 1): RrlSettings {
  return {
    rate: Math.ceil(c.rate / processes),
    burst: Math.ceil((c.burst ?? c.rate) / processes),
    slip: c.slip,
    ipv4Prefix: c.ipv4_prefix,
    ipv6Prefix: c.ipv6_prefix,
    exempt: c.exempt.map((x) => parseCidr(x)!),
    tableSize: c.table_size,
  };
}

/** What to do with one query. */
export type RrlVerdict = "answer" | "drop" | "slip";

interface Bucket {
  tokens: number;
  at: number;
  limited: number;
}

export class ResponseRateLimiter {
  private settings: RrlSettings;
  private readonly now: () => number;
  private readonly buckets = new Map<number | string, Bucket>();

  constructor(settings: RrlSettings, now: () => number = Date.now) {
    this.settings = settings;
    this.now = now;
  }

  /** New settings (a reload); the networks' budgets carry over. */
  configure(settings: RrlSettings): void {
    this.settings = settings;
  }

  /** Networks tracked now. */
  get size(): number {
    return this.buckets.size;
  }

  /** The verdict for a query from `peer` (spends one response of its network's budget when answered). */
  check(peer: IpBytes): RrlVerdict {
    const s = this.settings;
    if (s.rate <= 0) return "answer";
    for (const c of s.exempt) if (inCidr(peer, c)) return "answer";
    const key = networkKey(peer, peer.length === 4 ? s.ipv4Prefix : s.ipv6Prefix);
    const now = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= s.tableSize) this.forgetOldest();
      b = { tokens: s.burst, at: now, limited: 0 };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(s.burst, b.tokens + ((now - b.at) * s.rate) / 1000);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return "answer";
    }
    b.limited++;
    return s.slip > 0 && b.limited % s.slip === 0 ? "slip" : "drop";
  }

  /** Drops the oldest tenth of the table (insertion order). */
  private forgetOldest(): void {
    let n = Math.max(1, Math.floor(this.buckets.size / 10));
    for (const k of this.buckets.keys()) {
      this.buckets.delete(k);
      if (--n === 0) break;
    }
  }
}

/** A network's key: the masked IPv4 address as a number, or the masked IPv6 bytes as hex text. */
function networkKey(b: IpBytes, prefix: number): number | string {
  if (b.length === 4) {
    const v = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
    return prefix === 0 ? 0 : Math.floor(v / 2 ** (32 - prefix));
  }
  let s = "";
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    if (bits === 0) break;
    const byte = b[i] & ((0xff00 >> bits) & 0xff);
    s += (byte < 16 ? "0" : "") + byte.toString(16);
  }
  return `${s}/${prefix}`;
}
