/**
 * Connection limits for a listener facing hostile clients: at most `max` connections, at most `perClient` per
 * client (an IPv4 address, an IPv6 /64). A new connection always gets in; to make room the oldest idle connection
 * goes first (of the same client when that client is at its limit, else of anyone), and only when none is idle the
 * oldest busy one — so connections held open by an attacker age out in favour of clients that just arrived. Pure:
 * the host closes what `admit` returns.
 */
import { maskIp, parseIp } from "./ip.ts";

export interface LimitSettings {
  /** Connections at once on the listener. */
  max: number;
  /** Connections at once per client. */
  perClient: number;
}

interface Entry {
  client: string;
  idle: boolean;
}

export class ConnectionLimits<C> {
  private readonly all = new Map<C, Entry>();
  private readonly byClient = new Map<string, Map<C, Entry>>();
  /** Connections closed to make room, since the start. */
  evicted = 0;

  /** May be changed in place later (a reload): the next admission uses the new values. */
  readonly settings: LimitSettings;

  constructor(settings: LimitSettings) {
    this.settings = settings;
  }

  /** Connections held now. */
  get size(): number {
    return this.all.size;
  }

  /** The connections held now. */
  connections(): C[] {
    return [...this.all.keys()];
  }

  /** Registers a new (busy) connection; returns the connections to close to make room for it. */
  admit(conn: C, client: string): C[] {
    const out: C[] = [];
    const mine = this.byClient.get(client);
    if (mine && mine.size >= this.settings.perClient) out.push(this.oldest(mine));
    if (this.all.size - out.length >= this.settings.max) {
      const victim = this.oldest(this.all, out);
      if (victim !== undefined) out.push(victim);
    }
    for (const c of out) this.remove(c);
    this.evicted += out.length;
    const entry: Entry = { client, idle: false };
    this.all.set(conn, entry);
    let set = this.byClient.get(client);
    if (!set) this.byClient.set(client, (set = new Map()));
    set.set(conn, entry);
    return out;
  }

  /** Marks a connection idle (no message in progress) or busy. */
  setIdle(conn: C, idle: boolean): void {
    const e = this.all.get(conn);
    if (e) e.idle = idle;
  }

  /** Forgets a closed connection. */
  remove(conn: C): void {
    const e = this.all.get(conn);
    if (!e) return;
    this.all.delete(conn);
    const set = this.byClient.get(e.client)!;
    set.delete(conn);
    if (set.size === 0) this.byClient.delete(e.client);
  }

  /** The oldest idle connection of `pool`, else its oldest one; skipping those in `skip`. */
  private oldest(pool: Map<C, Entry>, skip: C[] = []): C {
    let first: C | undefined;
    for (const [c, e] of pool) {
      if (skip.includes(c)) continue;
      if (e.idle) return c;
      first ??= c;
    }
    return first!;
  }
}

/** The key connections are counted under: the address for IPv4, its /64 for IPv6. */
export function clientKey(address: string): string {
  const b = parseIp(address);
  if (!b) return address;
  if (b.length === 4) return b.join(".");
  return Array.from(maskIp(b, 64).subarray(0, 8), (x) => x.toString(16).padStart(2, "0")).join("") + "/64";
}
