/**
 * What the DNS node tells its operator about queries: counters for /metrics (queries by transport, type and rcode;
 * answers by edge) and, when asked, one JSON line per query. Kept cheap for the UDP path: counters are integers in
 * maps keyed by numbers, the log line is concatenated by hand (no object, no JSON.stringify of a whole record), the
 * timestamp text is reused within a millisecond. Runtime-agnostic: the line goes to an injected `write`.
 */
import { ClientAddresses, type DailyKey } from "../privacy/client-addresses.ts";
import type { Answer, QueryObserver, Transport } from "./answer.ts";
import { rcodeName, typeName } from "./codes.ts";

export const TRANSPORTS: readonly Transport[] = ["udp", "tcp", "doh", "dot"];
const TRANSPORT_INDEX: Record<Transport, number> = { udp: 0, tcp: 1, doh: 2, dot: 3 };

/** Counts to move between processes (a worker process's since its last report). */
export interface StatsDelta {
  /** [key, count]: key = (transport × 32 + rcode) × 65536 + qtype (qtype -1 counted as 65535). */
  queries: [number, number][];
  answers: [string, number][];
  /** Responses response rate limiting dropped and slipped (TC=1). */
  rrl?: [number, number];
}

export interface QueryCount {
  transport: Transport;
  qtype: string;
  rcode: string;
  count: number;
}

export class DnsObserver implements QueryObserver {
  timed: boolean;
  private readonly queries = new Map<number, number>();
  private readonly answers = new Map<string, number>();
  /** UDP responses dropped and slipped by response rate limiting. */
  private rrl: [number, number] = [0, 0];
  private write: ((line: string) => void) | undefined;
  private readonly now: () => number;
  private readonly wallClock: () => number;
  private isoMs = -1;
  private iso = "";
  /** Client address text by bytes object (the Node host hands the same object for the same peer again). */
  private clientText = new WeakMap<Uint8Array, string>();
  /** How the query log writes client addresses and ECS subnets ([privacy]). */
  private addresses: ClientAddresses;

  /**
   * `write`: where query log lines go (undefined: no query log). `clock`: a monotonic clock in ms with sub-ms
   * precision (performance.now); `wallClock`: Date.now.
   */
  constructor(opts: { write?: (line: string) => void; addresses?: ClientAddresses; clock?: () => number; wallClock?: () => number } = {}) {
    this.write = opts.write;
    this.addresses = opts.addresses ?? new ClientAddresses({ client_addresses: "truncate", ipv4_prefix: 24, ipv6_prefix: 48 });
    this.timed = !!opts.write;
    this.now = opts.clock ?? (() => performance.now());
    this.wallClock = opts.wallClock ?? Date.now;
  }

  /** The same counters with another query log target and address form (a reload may change either). */
  withWrite(write: ((line: string) => void) | undefined, addresses: ClientAddresses = this.addresses): this {
    this.write = write;
    if (addresses !== this.addresses) this.clientText = new WeakMap();
    this.addresses = addresses;
    this.timed = !!write;
    return this;
  }

  /** The hashing key in use, for the parts a reload builds. */
  get addressKey(): DailyKey {
    return this.addresses.key;
  }

  clock(): number {
    return this.now();
  }

  answered(a: Answer, client: Uint8Array | null, transport: Transport, started: number): void {
    const key = ((TRANSPORT_INDEX[transport] * 32 + (a.rcode & 31)) * 65536 + (a.qtype < 0 ? 65535 : a.qtype));
    this.queries.set(key, (this.queries.get(key) ?? 0) + 1);
    const edges = a.edges;
    if (edges) for (let i = 0; i < edges.length; i++) this.answers.set(edges[i].name, (this.answers.get(edges[i].name) ?? 0) + 1);
    if (this.write) this.write(this.line(a, client, transport, started));
  }

  /** The query log line (no trailing newline). */
  line(a: Answer, client: Uint8Array | null, transport: Transport, started: number): string {
    const us = Math.max(0, Math.round((this.now() - started) * 1000));
    const ms = this.wallClock();
    if (ms !== this.isoMs) {
      this.isoMs = ms;
      this.iso = new Date(ms).toISOString();
    }
    const q = a.question;
    const qname = q ? (q.labels.length ? q.labels.join(".") + "." : ".") : "";
    let answers = "";
    if (a.records) for (const r of a.records) answers += (answers ? "," : "") + JSON.stringify(r);
    if (a.edges) for (const e of a.edges) answers += (answers ? ',"' : '"') + e.name + '"'; // names are [A-Za-z0-9._-]
    const ecs = a.ecs ? `"${this.addresses.subnet(a.ecs.address, a.ecs.source)}"` : "null";
    return (
      `{"time":"${this.iso}","transport":"${transport}","client":${client ? `"${this.clientIp(client)}"` : "null"},` +
      `"qname":${JSON.stringify(qname)},"qtype":"${typeName(a.qtype)}","rcode":"${rcodeName(a.rcode)}",` +
      `"answers":[${answers}],"ecs":${ecs},"duration_us":${us}}`
    );
  }

  private clientIp(b: Uint8Array): string {
    if (this.addresses.mode === "hash") return this.addresses.bytes(b); // the key changes at midnight: not kept
    let t = this.clientText.get(b);
    if (t === undefined) this.clientText.set(b, (t = this.addresses.bytes(b)));
    return t;
  }

  /** A UDP response response rate limiting dropped or sent empty with TC=1. */
  limited(verdict: "drop" | "slip"): void {
    this.rrl[verdict === "drop" ? 0 : 1]++;
  }

  /** Responses rate limiting dropped and slipped since the start. */
  rrlCounts(): { dropped: number; slipped: number } {
    return { dropped: this.rrl[0], slipped: this.rrl[1] };
  }

  /** Queries by transport, type and rcode since the start (this process's and absorbed ones). */
  queryCounts(): QueryCount[] {
    const out: QueryCount[] = [];
    for (const [key, count] of this.queries) {
      const qtype = key % 65536;
      const rest = Math.floor(key / 65536);
      out.push({ transport: TRANSPORTS[Math.floor(rest / 32)], rcode: rcodeName(rest % 32), qtype: typeName(qtype === 65535 ? -1 : qtype), count });
    }
    return out;
  }

  /** Answers that named each edge. */
  answerCounts(): Map<string, number> {
    return this.answers;
  }

  totalQueries(): number {
    let n = 0;
    for (const c of this.queries.values()) n += c;
    return n;
  }

  /** Everything counted since the last call, and resets (a worker process reporting to its parent). */
  takeDelta(): StatsDelta | undefined {
    if (this.queries.size === 0 && this.answers.size === 0 && this.rrl[0] + this.rrl[1] === 0) return undefined;
    const delta: StatsDelta = { queries: [...this.queries], answers: [...this.answers], rrl: this.rrl };
    this.queries.clear();
    this.answers.clear();
    this.rrl = [0, 0];
    return delta;
  }

  /** Adds another process's counts. */
  absorb(d: StatsDelta): void {
    for (const [k, n] of d.queries) this.queries.set(k, (this.queries.get(k) ?? 0) + n);
    for (const [k, n] of d.answers) this.answers.set(k, (this.answers.get(k) ?? 0) + n);
    if (d.rrl) {
      this.rrl[0] += d.rrl[0];
      this.rrl[1] += d.rrl[1];
    }
  }
}
