/**
 * What a log line says about a client's address ([privacy] client_addresses): its network (`truncate`), a keyed hash
 * (`hash`) or the address (`full`). Rate limits and bans work on the full address in memory; only what is written
 * down goes through here.
 *
 * Hashes use a key of the day (UTC) that is derived forward only: the key of day d+1 is a one-way function of day d's.
 * A box's host holds today's key and gives it to each process it starts; a process moves it forward when the day
 * changes. Past keys are not kept anywhere, so yesterday's hashes cannot be tied to addresses by trying every address.
 */
import type { PrivacyConfig } from "../config/privacy-schema.ts";
import { formatIp, maskIp, parseIp, type IpBytes } from "../net/ip.ts";
import { siphash24 } from "./siphash.ts";

const DAY_MS = 86_400_000;

/** Today's hashing key, moved forward (never back) as days pass. */
export class DailyKey {
  private day: number;
  private key: Uint8Array;

  private constructor(day: number, key: Uint8Array) {
    this.day = day;
    this.key = key;
  }

  /** A new random key for the day of `now`. */
  static fresh(now = Date.now()): DailyKey {
    return new DailyKey(Math.floor(now / DAY_MS), crypto.getRandomValues(new Uint8Array(16)));
  }

  /** The form `serialize` gives ("<day>:<32 hex digits>"); null when it is not that. */
  static parse(text: string): DailyKey | null {
    const m = /^(\d{1,9}):([0-9a-f]{32})$/.exec(text.trim());
    if (!m) return null;
    const key = new Uint8Array(16);
    for (let i = 0; i < 16; i++) key[i] = parseInt(m[2]!.slice(i * 2, i * 2 + 2), 16);
    return new DailyKey(Number(m[1]), key);
  }

  /** Today's key as text, to hand to a process this host starts (it reaches no log and no disk). */
  serialize(now = Date.now()): string {
    const key = this.at(now);
    return `${this.day}:${Array.from(key, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  /** The key of `now`'s day: earlier days' keys are overwritten as it moves forward; a clock that goes back keeps today's. */
  at(now = Date.now()): Uint8Array {
    const day = Math.floor(now / DAY_MS);
    // Bounded: a key handed over years late is replaced by a fresh one rather than walked forward day by day.
    if (day - this.day > 3660) {
      this.day = day;
      this.key = crypto.getRandomValues(new Uint8Array(16));
    }
    while (this.day < day) {
      this.key = ratchet(this.key);
      this.day++;
    }
    return this.key;
  }
}

const RATCHET = [new TextEncoder().encode("parrot-cdn ratchet 0"), new TextEncoder().encode("parrot-cdn ratchet 1")] as const;

/** The next day's key: two SipHash outputs of constants under today's key (a PRF, so today's key can't be found from it). */
function ratchet(key: Uint8Array): Uint8Array {
  const next = new Uint8Array(16);
  const view = new DataView(next.buffer);
  view.setBigUint64(0, siphash24(key, RATCHET[0]), true);
  view.setBigUint64(8, siphash24(key, RATCHET[1]), true);
  return next;
}

/** Writes client addresses the way `[privacy]` says. */
export class ClientAddresses {
  readonly mode: PrivacyConfig["client_addresses"];
  private readonly v4: number;
  private readonly v6: number;
  /** The key of the day it hashes with (kept across a reload). */
  readonly key: DailyKey;
  private readonly now: () => number;

  constructor(privacy: Pick<PrivacyConfig, "client_addresses" | "ipv4_prefix" | "ipv6_prefix">, key?: DailyKey, now: () => number = Date.now) {
    this.mode = privacy.client_addresses;
    this.v4 = privacy.ipv4_prefix;
    this.v6 = privacy.ipv6_prefix;
    this.now = now;
    this.key = key ?? DailyKey.fresh(now());
  }

  /** An address as text (an IPv4-mapped IPv6 address counts as IPv4); text that is not an address is not written. */
  text(address: string): string {
    const bytes = parseIp(address);
    return bytes ? this.bytes(bytes) : "invalid";
  }

  /** An address as bytes (4 or 16). */
  bytes(address: IpBytes): string {
    const b = unmapped(address);
    if (this.mode === "full") return formatIp(b);
    if (this.mode === "hash") return this.hash(b);
    const prefix = b.length === 4 ? this.v4 : this.v6;
    return `${formatIp(maskIp(b, prefix))}/${prefix}`;
  }

  /** A subnet a client named (EDNS Client Subnet): never more precise than `truncate` keeps, hashed with `hash`. */
  subnet(address: IpBytes, prefix: number): string {
    const b = unmapped(address);
    if (this.mode === "full") return `${formatIp(b)}/${prefix}`;
    const masked = maskIp(b, prefix);
    if (this.mode === "hash") return `${this.hash(masked)}/${prefix}`;
    const kept = Math.min(prefix, b.length === 4 ? this.v4 : this.v6);
    return `${formatIp(maskIp(b, kept))}/${kept}`;
  }

  private hash(b: IpBytes): string {
    return "h" + siphash24(this.key.at(this.now()), b).toString(16).padStart(16, "0");
  }
}

function unmapped(b: IpBytes): IpBytes {
  if (b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return b.slice(12);
  return b;
}
