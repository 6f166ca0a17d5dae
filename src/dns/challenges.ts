/**
 * ACME DNS-01 challenge records (issue 10's contract): TXT values an ACME client publishes through
 * `POST /admin/acme-challenge` at `_acme-challenge.<name>` inside the zone, held for their ttl, at most `max` values
 * in all. Pure: the clock is injected; every change is also a `ChallengeChange` that other processes apply.
 */
import { asciiLower } from "./wire.ts";

/** The first label every challenge name starts with (RFC 8555 §8.4). */
export const CHALLENGE_LABEL = "_acme-challenge";
/** The TTL of challenge answers: at most this, and at most [dns] ttl. */
export const CHALLENGE_ANSWER_TTL = 60;

/** One change, as the primary passes it on to worker processes. */
export type ChallengeChange =
  | { op: "add"; name: string; value: string; expiresAt: number }
  | { op: "remove"; name: string; value?: string };

/** Why a name or value cannot be a challenge record; undefined when it can. */
export function checkChallenge(name: unknown, value: unknown, origin: string, valueRequired = true): string | undefined {
  if (typeof name !== "string" || name.length === 0) return '"name" must be a DNS name';
  const key = asciiLower(name.replace(/\.$/, ""));
  if (key.length > 253 || !/^([a-z0-9_-]{1,63}\.)*[a-z0-9_-]{1,63}$/.test(key))
    return `"name" ${JSON.stringify(name)} is not a DNS name (letters, digits, '-', '_'; labels of 1 to 63)`;
  if (!key.endsWith(`.${origin}`)) return `"name" must be inside the zone ${origin}`;
  if (key.split(".")[0] !== CHALLENGE_LABEL) return `"name" must start with ${CHALLENGE_LABEL}.`;
  if (value === undefined && !valueRequired) return undefined;
  if (typeof value !== "string" || value.length < 1 || value.length > 255 || !/^[\x20-\x7e]+$/.test(value))
    return '"value" must be 1 to 255 printable ASCII characters';
  return undefined;
}

/** The challenge records held by one process. */
export class ChallengeStore {
  /** name (lowercase, no trailing dot) → value → expiry (ms). */
  private readonly records = new Map<string, Map<string, number>>();
  private count = 0;
  private nextExpiry = Infinity;
  /** Every name that exists because of the records (their names and ancestors), for `version`. */
  private existing: { version: number; names: Set<string> } | undefined;
  /** Bumped on every change: answers cached under another version are redone. */
  version = 0;

  readonly max: number;
  private readonly now: () => number;

  constructor(max: number, now: () => number = Date.now) {
    this.max = max;
    this.now = now;
  }

  /** Values held now. */
  get size(): number {
    this.expire();
    return this.count;
  }

  /** Adds (or refreshes) a value for `ttlSeconds`; "full" when `max` values are held and this one is new. */
  add(name: string, value: string, ttlSeconds: number): ChallengeChange | "full" {
    this.expire();
    const change: ChallengeChange = { op: "add", name: key(name), value, expiresAt: this.now() + ttlSeconds * 1000 };
    if (this.count >= this.max && !this.records.get(change.name)?.has(value)) return "full";
    this.apply(change);
    return change;
  }

  /** Removes one value, or every value of the name. */
  remove(name: string, value?: string): ChallengeChange {
    const change: ChallengeChange = { op: "remove", name: key(name), value };
    this.apply(change);
    return change;
  }

  /** Applies a change made here or in another process. */
  apply(c: ChallengeChange): void {
    const name = key(c.name);
    let values = this.records.get(name);
    if (c.op === "add") {
      if (!values) this.records.set(name, (values = new Map()));
      if (!values.has(c.value)) this.count++;
      values.set(c.value, c.expiresAt);
      this.nextExpiry = Math.min(this.nextExpiry, c.expiresAt);
    } else {
      if (!values) return;
      const gone = c.value === undefined ? [...values.keys()] : values.has(c.value) ? [c.value] : [];
      for (const v of gone) values.delete(v);
      this.count -= gone.length;
      if (values.size === 0) this.records.delete(name);
      if (!gone.length) return;
    }
    this.version++;
  }

  /** The values at a lowercase name (none: []), expired ones gone. */
  values(name: string): string[] {
    this.expire();
    const values = this.records.get(name);
    return values ? [...values.keys()] : [];
  }

  /** Whether a lowercase name holds values or lies above one that does (then it exists, as an empty non-terminal). */
  exists(name: string): boolean {
    this.expire();
    if (this.records.size === 0) return false;
    if (this.existing?.version !== this.version) {
      const names = new Set<string>();
      for (let n of this.records.keys()) for (; n.includes("."); n = n.slice(n.indexOf(".") + 1)) names.add(n);
      this.existing = { version: this.version, names };
    }
    return this.existing.names.has(name);
  }

  /** Every name holding values. */
  names(): string[] {
    this.expire();
    return [...this.records.keys()];
  }

  /** Everything held, as changes that rebuild it (for a process that starts later). */
  snapshot(): ChallengeChange[] {
    this.expire();
    const out: ChallengeChange[] = [];
    for (const [name, values] of this.records) for (const [value, expiresAt] of values) out.push({ op: "add", name, value, expiresAt });
    return out;
  }

  /** Drops what expired (cheap when nothing did). */
  expire(): void {
    const now = this.now();
    if (now < this.nextExpiry) return;
    let next = Infinity;
    let changed = false;
    for (const [name, values] of this.records) {
      for (const [value, at] of values) {
        if (at <= now) {
          values.delete(value);
          this.count--;
          changed = true;
        } else next = Math.min(next, at);
      }
      if (values.size === 0) this.records.delete(name);
    }
    this.nextExpiry = next;
    if (changed) this.version++;
  }
}

const key = (name: string) => asciiLower(name.replace(/\.$/, ""));
