/**
 * Finished replies kept for repeats: a query whose bytes equal an earlier one's apart from the ID and the case of the
 * question's name gets that reply again with its ID and question bytes patched in — no parsing, no resolution, no
 * assembly. The key is everything that can decide a reply: the query from the flags on (RD/CD bits, the question, the
 * OPT with its payload size, DO bit, version and ECS option), and for replies that depend on the connecting address
 * (the director's without ECS) that address too. Pure: the clock is passed in.
 *
 * A reply holds until its TTL runs out, and the whole cache is dropped when what replies were made under moves: the
 * edges' health, the DNSSEC signing window, the ACME challenge records (answer.ts checks them per query) — a reload
 * or key roll makes a new server and so a new cache.
 */
import { Buffer } from "node:buffer";
import type { Answer } from "./answer.ts";
import { readQuestion, type RawQuestion } from "./wire.ts";

/** Longest query cached (bytes): anything longer is answered the long way. */
const MAX_QUERY = 512;

interface Entry {
  /** The normalized query (and the client's address for per-client replies). */
  key: Uint8Array;
  /** Only a marker: replies to this query depend on the connecting address (look again with it). */
  perClient: boolean;
  reply: Answer | undefined;
  /** Question length (bytes from offset 12) patched from each query. */
  questionLength: number;
  /** Clock value past which the reply is made anew. */
  expires: number;
}

/** Hits and misses since the cache was made. */
export interface ReplyStats {
  hits: number;
  misses: number;
}

/** A reply replayed from the cache: its question (labels, case as sent) is read from the query only when asked for. */
class ReplayedAnswer implements Answer {
  readonly rcode: number;
  readonly ttl: number;
  readonly tailored: boolean;
  readonly requestedSize: number;
  readonly qtype: number;
  readonly ecs: Answer["ecs"];
  readonly edges: Answer["edges"];
  readonly records: Answer["records"];
  readonly bytes: Uint8Array;
  private readonly query: Uint8Array;
  private read: RawQuestion | null | undefined;
  constructor(bytes: Uint8Array, from: Answer, query: Uint8Array) {
    this.bytes = bytes;
    this.query = query;
    this.rcode = from.rcode;
    this.ttl = from.ttl;
    this.tailored = from.tailored;
    this.requestedSize = from.requestedSize;
    this.qtype = from.qtype;
    this.ecs = from.ecs;
    this.edges = from.edges;
    this.records = from.records;
  }
  get question(): RawQuestion | null {
    if (this.read === undefined) this.read = readQuestion(this.query);
    return this.read;
  }
}

/** Where the key is built, and its hash (answering is synchronous: one scratch buffer serves every query). */
const scratch = new Uint8Array(MAX_QUERY + 17);
let keyHash = 0;

export class ReplyCache {
  readonly stats: ReplyStats = { hits: 0, misses: 0 };
  private readonly entries = new Map<number, Entry>();
  private health = 0;
  private window = 0;

  private readonly max: number;

  constructor(max = 10_000) {
    this.max = max;
  }

  /** Entries now (markers included). */
  get size(): number {
    return this.entries.size;
  }

  /** Drops every reply. */
  clear(): void {
    this.entries.clear();
  }

  /** Drops every reply when the edges' health version or the signing window is not the one they were made under. */
  validate(health: number, window: number): void {
    if (health === this.health && window === this.window) return;
    this.health = health;
    this.window = window;
    this.entries.clear();
  }

  /** The kept reply to `query` from `client`, ID and question patched in; null when there is none (or it expired). */
  lookup(query: Uint8Array, client: Uint8Array | null, now: number): Answer | null {
    const n = normalize(query);
    if (n < 0) return null;
    let e = this.find(n, now);
    if (e?.perClient) e = this.find(withClient(n, client), now);
    if (!e?.reply) {
      this.stats.misses++;
      return null;
    }
    this.stats.hits++;
    // From Node's buffer pool: no backing store of its own per reply (and UDP sends a Buffer without converting).
    const kept = e.reply.bytes;
    const bytes = Buffer.allocUnsafe(kept.length);
    bytes.set(kept);
    bytes[0] = query[0];
    bytes[1] = query[1];
    bytes.set(query.subarray(12, 12 + e.questionLength), 12);
    return new ReplayedAnswer(bytes, e.reply, query);
  }

  /** Keeps `reply` (made for `query` from `client`; `perClient`: it depends on that address) for its TTL. */
  store(query: Uint8Array, client: Uint8Array | null, reply: Answer, perClient: boolean, now: number): void {
    if (reply.ttl <= 0 || !reply.question) return;
    let n = normalize(query);
    if (n < 0) return;
    if (this.entries.size >= this.max) this.entries.clear();
    const questionLength = reply.question.bytes.length;
    const expires = now + reply.ttl * 1000;
    if (perClient) {
      this.put(n, { key: scratch.slice(0, n), perClient: true, reply: undefined, questionLength, expires: Infinity });
      n = withClient(n, client);
    }
    this.put(n, { key: scratch.slice(0, n), perClient: false, reply, questionLength, expires });
  }

  private put(n: number, e: Entry): void {
    this.entries.set(keyHash, e);
  }

  /** The entry for the key in scratch[0, n) (hashed in keyHash), if unexpired. */
  private find(n: number, now: number): Entry | undefined {
    const e = this.entries.get(keyHash);
    if (!e || e.key.length !== n || now >= e.expires) return undefined;
    const k = e.key;
    for (let i = 0; i < n; i++) if (k[i] !== scratch[i]) return undefined;
    return e;
  }
}

/**
 * The query from its flags on into scratch, the question's name in lowercase, and its FNV-1a hash into keyHash;
 * returns the length, or -1 when the query is too long or its question's name does not end inside it (the long way
 * answers those).
 */
function normalize(query: Uint8Array): number {
  const len = query.length;
  if (len > MAX_QUERY || len < 13) return -1;
  let p = 12;
  while (p < len && query[p] !== 0) {
    if (query[p] & 0xc0) return -1;
    p += query[p] + 1;
  }
  if (p >= len) return -1;
  let h = 0x811c9dc5;
  for (let i = 2; i < len; i++) {
    let b = query[i];
    // Length bytes are below 0x40: only the name's letters are in A–Z.
    if (b >= 0x41 && b <= 0x5a && i >= 12 && i < p) b += 32;
    scratch[i - 2] = b;
    h = Math.imul(h ^ b, 0x01000193);
  }
  keyHash = h >>> 0;
  return len - 2;
}

/** Appends the client's address (its length first: none, IPv4, IPv6) to the key in scratch and keyHash. */
function withClient(n: number, client: Uint8Array | null): number {
  const len = client ? client.length : 0;
  let h = Math.imul(keyHash ^ len, 0x01000193);
  scratch[n] = len;
  for (let i = 0; i < len; i++) {
    const b = client![i];
    scratch[n + 1 + i] = b;
    h = Math.imul(h ^ b, 0x01000193);
  }
  keyHash = h >>> 0;
  return n + 1 + len;
}
