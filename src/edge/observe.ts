/**
 * What the edge tells its operator: Prometheus metrics and one JSON log line per request. The origin function is
 * wrapped to time origin requests; request and origin facts meet through the client Request object.
 */
import { compressionGauges } from "./compress.ts";
import { Registry } from "../metrics/registry.ts";
import type { OriginRequest, ShieldEvent } from "./origin.ts";
import type { CacheSteps } from "../contracts/functions.ts";
import type { StoreStats } from "../contracts/store.ts";
import type { Delivered } from "./deliver.ts";
import type { ClientAddresses } from "../privacy/client-addresses.ts";

/** The store process's stats and this isolate's hot tier, for the metrics (bare workerd only). */
export interface EdgeStoreStats {
  store?: StoreStats;
  hot?: { bytes: number; entries: number; hits: number; misses: number; diskHits?: number };
}

type OriginFn = (client: Request, clientIp: string | undefined, req: OriginRequest) => Promise<Response>;

const ORIGIN_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class EdgeObserver {
  readonly metrics = new Registry();
  private readonly origin = new WeakMap<Request, { status?: number; ms: number }>();
  /** The shield that answered a request's fill (tiered cache), for the access log. */
  private readonly shieldOf = new WeakMap<Request, string>();
  private readonly edgeName: string;
  private readonly accessLog: boolean;
  /** How the access log writes client addresses ([privacy]). */
  private readonly addresses: ClientAddresses;
  private readonly lines: BatchedLines;
  /** Last absolute value seen of each counter that is read from elsewhere (store stats, hot tier). */
  private readonly seen = new Map<string, number>();

  constructor(edgeName: string, accessLog: boolean, addresses: ClientAddresses, log: (line: string) => void = (l) => console.log(l)) {
    this.edgeName = edgeName;
    this.addresses = addresses;
    this.accessLog = accessLog;
    this.lines = new BatchedLines(log);
    this.metrics.onCollect(() => {
      const total = this.metrics.sum("parrot_edge_requests_total");
      const hits = this.metrics.sum("parrot_edge_requests_total", { cache_status: "HIT" });
      this.metrics.set("parrot_edge_hit_ratio", "HIT answers over all answers since start.", {}, total ? hits / total : 0);
      const shieldHits = this.metrics.sum("parrot_edge_shield_requests_total", { result: "hit" });
      const shieldAnswers = shieldHits + this.metrics.sum("parrot_edge_shield_requests_total", { result: "miss" });
      if (shieldAnswers) this.metrics.set("parrot_edge_shield_hit_ratio", "Fills a shield answered from its cache over all fills shields answered, since start.", {}, shieldHits / shieldAnswers);
      const z = compressionGauges();
      this.metrics.set("parrot_edge_compress_held_bytes", "Bytes of bodies held for compression in this process (at most compress_budget_bytes).", {}, z.heldBytes);
      this.metrics.set("parrot_edge_compressing_bytes", "Bytes of bodies being compressed in this process now.", {}, z.compressingBytes);
    });
  }

  /** The origin function, timed: latency histogram, errors, and the facts the access log needs. */
  wrapOrigin(origin: OriginFn): OriginFn {
    return async (client, clientIp, req) => {
      const started = Date.now();
      try {
        const res = await origin(client, clientIp, req);
        const ms = Date.now() - started;
        this.origin.set(client, { status: res.status, ms });
        this.metrics.observe("parrot_edge_origin_seconds", "Time to the origin's response headers.", ORIGIN_BOUNDS, {}, ms / 1000);
        if (res.status >= 500) this.metrics.inc("parrot_edge_origin_errors_total", "Origin failures.", { kind: "5xx" });
        return res;
      } catch (err) {
        this.origin.set(client, { ms: Date.now() - started });
        if ((err as Error)?.name === "ClientBodyError") throw err; // the client's upload failed, not the origin
        const kind = (err as Error)?.name === "OriginTimeout" ? "timeout" : "unreachable";
        this.metrics.inc("parrot_edge_origin_errors_total", "Origin failures.", { kind });
        throw err;
      }
    };
  }

  /** Counts one request to a shield (tiered cache). */
  shield(client: Request, e: ShieldEvent) {
    this.metrics.inc(
      "parrot_edge_shield_requests_total",
      "Requests this edge sent to its shields, by shield and result: hit (the shield had it), miss (the shield went to the origin), failed (no answer or a 5xx of its own), behind (it had not applied a purge this box has); after failed and behind the next shield or the origin was tried.",
      { shield: e.shield, result: e.result },
    );
    if (e.result === "hit") this.metrics.inc("parrot_edge_shield_origin_avoided_total", "Origin requests avoided: fills this edge got from a shield's cache.");
    if (e.result === "hit" || e.result === "miss") this.shieldOf.set(client, e.shield);
  }

  /** Sets the store's gauges and counters from its stats (absent under Miniflare, which has no store binding). */
  storeStats(stats: EdgeStoreStats) {
    const m = this.metrics;
    const { store, hot } = stats;
    if (store) {
      m.set("parrot_edge_store_bytes", "Bytes of the entries in the disk store.", {}, store.bytes);
      m.set("parrot_edge_store_max_bytes", "The disk store's bound (store_max_bytes).", {}, store.maxBytes);
      if (store.maxEntries !== undefined) m.set("parrot_edge_store_max_entries", "The disk store's entry bound (store_max_entries).", {}, store.maxEntries);
      m.set("parrot_edge_store_entries", "Entries in the disk store.", {}, store.entries);
      m.set("parrot_edge_store_locks", "Coalescing locks held in the store (origin fetches under way for the box).", {}, store.locks);
      this.counterFrom("parrot_edge_store_corrupt_total", "Entries the disk store dropped because a digest did not match (never served).", {}, store.corrupt ?? 0);
      if (store.reads) {
        const help = "Bytes the disk store asked of its disk for answers: native (body bytes passed on untouched; a body the edge drops unread counts whole, though the disk reads 64 KiB of it), checked (body blocks read and checked in JavaScript), head.";
        this.counterFrom("parrot_edge_store_read_bytes_total", help, { path: "native" }, store.reads.nativeBytes);
        this.counterFrom("parrot_edge_store_read_bytes_total", help, { path: "checked" }, store.reads.checkedBytes);
        this.counterFrom("parrot_edge_store_read_bytes_total", help, { path: "head" }, store.reads.headBytes);
      }
      for (const [call, n] of Object.entries(store.calls ?? {})) {
        this.counterFrom("parrot_edge_store_calls_total", "Calls the store answered, by kind (match, lookup-lock, put, purge, lock, unlock, ...): its round trips.", { call }, n);
      }
      for (const reason of ["lru", "inactive", "expired"] as const) {
        this.counterFrom("parrot_edge_store_evictions_total", "Entries the disk store removed: lru (size bound), inactive (store_inactive), expired.", { reason }, store.evictions[reason]);
      }
    }
    if (hot) {
      m.set("parrot_edge_store_hot_bytes", "Bytes held by this process's hot memory tier.", {}, hot.bytes);
      m.set("parrot_edge_store_hot_entries", "Entries held by this process's hot memory tier.", {}, hot.entries);
      this.counterFrom("parrot_edge_store_hot_hits_total", "Reads answered by this process's hot memory tier.", {}, hot.hits);
      this.counterFrom("parrot_edge_store_hot_misses_total", "Reads the hot memory tier passed to the store.", {}, hot.misses);
      if (hot.diskHits !== undefined) {
        this.counterFrom("parrot_edge_store_disk_direct_hits_total", "Reads this process answered from the store's files itself, without a call to the store.", {}, hot.diskHits);
      }
    }
  }

  /** A counter that follows an absolute count kept elsewhere (a smaller count means that side restarted). */
  counterFrom(name: string, help: string, labels: Record<string, string>, value: number) {
    const id = name + JSON.stringify(labels);
    const last = this.seen.get(id) ?? 0;
    this.seen.set(id, value);
    this.metrics.inc(name, help, labels, value >= last ? value - last : value);
  }

  /**
   * The access-log line of an answer a site's function made itself (one that came through the cache was logged
   * there, on the function's fetch()): cache_status null, the function and its version.
   */
  functionAnswered(request: Request, url: URL, response: Response, fn: { id: string; version?: string }, client: { readonly clientIp?: string }, started: number, waitUntil?: (p: Promise<unknown>) => void) {
    if (!this.accessLog) return;
    this.lines.push(
      JSON.stringify({
        time: new Date(started).toISOString(),
        edge: this.edgeName,
        client: client.clientIp ?? null,
        method: request.method,
        host: url.host,
        path: url.pathname + url.search,
        status: response.status,
        bytes: Number(response.headers.get("content-length") ?? 0),
        duration_ms: Date.now() - started,
        cache_status: null,
        function: fn.id,
        function_version: fn.version ?? null,
      }),
      waitUntil,
    );
  }

  /** What the cache did for one request (the trace): its status, the origin's answer and the shield when they were asked. */
  steps(request: Request, xcs: string): CacheSteps {
    const origin = this.origin.get(request);
    const shield = this.shieldOf.get(request);
    return { cache: xcs, ...(origin ? { origin } : {}), ...(shield ? { shield } : {}) };
  }

  /** Counts and logs one answered request; `waitUntil` lets a batch of log lines wait for more. */
  answered(request: Request, url: URL, answer: Delivered, client: { readonly clientIp?: string }, started: number, waitUntil?: (p: Promise<unknown>) => void) {
    const { response, xcs, bytes } = answer;
    const s = response.status;
    const klass = s < 200 ? "1xx" : s < 300 ? "2xx" : s < 400 ? "3xx" : s < 500 ? "4xx" : "5xx";
    this.metrics.inc("parrot_edge_requests_total", "Answers by cache status and status class.", { cache_status: xcs, status_class: klass });
    this.metrics.inc("parrot_edge_response_bytes_total", "Body bytes sent, by Content-Length.", {}, bytes);
    if (answer.collapsed) this.metrics.inc("parrot_edge_coalesced_total", "Requests answered from another request's origin fetch.");
    if (!this.accessLog) return;
    const origin = this.origin.get(request);
    this.lines.push(
      JSON.stringify({
        time: new Date(started).toISOString(),
        edge: this.edgeName,
        client: client.clientIp === undefined ? null : this.addresses.text(client.clientIp),
        method: request.method,
        host: url.host,
        path: url.pathname + url.search,
        status: s,
        bytes,
        duration_ms: Date.now() - started,
        cache_status: xcs,
        origin_status: origin?.status ?? null,
        origin_ms: origin?.ms ?? null,
        shield: this.shieldOf.get(request) ?? null,
      }),
      waitUntil,
    );
  }
}

/**
 * Access log lines written in batches, one write per LOG_BATCH lines or LOG_DELAY_MS: a console line per request
 * costs about a third of a HIT's time in workerd, a batch of them about as much as one.
 */
class BatchedLines {
  private pending: string[] = [];
  private timed = false;
  private readonly write: (text: string) => void;

  constructor(write: (text: string) => void) {
    this.write = write;
  }

  push(line: string, waitUntil?: (p: Promise<unknown>) => void) {
    this.pending.push(line);
    if (this.pending.length >= LOG_BATCH || !waitUntil) return this.flush();
    if (this.timed) return;
    this.timed = true;
    waitUntil(
      new Promise((r) => setTimeout(r, LOG_DELAY_MS)).then(() => {
        this.timed = false;
        this.flush();
      }),
    );
  }

  flush() {
    if (!this.pending.length) return;
    const text = this.pending.join("\n");
    this.pending = [];
    this.write(text);
  }
}

const LOG_BATCH = 128;
const LOG_DELAY_MS = 250;
