/**
 * The edge cache's request flow, as small steps over one request state (transaction.ts), in the spirit of
 * Varnish's request state machine:
 *
 *   receive ─┬─ not GET/HEAD ─────────────────────────────────────────────── pass ─────────────────┐
 *            ├─ bypass rule ──────────────────────────────────────────────── fetch and store ──────┤
 *            └─ lookup ─┬─ nothing ── (coalesce: claim, or wait and look again) ─┬─ fetch and store ┤ MISS
 *                       │                           slicing on for the rule ─────┴─ slices ─────────┤
 *                       └─ judge ─┬─ a sliced object's record ────────────────────── slices ─────────┤
 *                                 ├─ fresh ───────────────────────────────── HIT ──────────────────┤
 *                                 ├─ stale, swr allows ─ STALE + background refresh / UPDATING ────┤
 *                                 └─ stale ── (coalesce) ── revalidate: REVALIDATED / EXPIRED / STALE ┴─ deliver
 *
 *   slices ── exit: deliver (an answer from slices, or the origin's own) | store whole / fetch whole (→ fetch and
 *             store: the object was not large after all) | miss (a record whose object changed: → slices, once)
 *
 * Each step is a function in its own module (lookup, coalesce, fetch-store, slices, revalidate, pass, deliver). The
 * slice step has one entry and one exit: it never calls the whole-object step, it says where the request goes next.
 * The steps share primitives instead: the edge's origin GET (origin-get.ts), the entry write under a Vary marker
 * (lookup.ts `putResponse`), the request's lock (transaction.ts `release`). Every path ends in an Outcome that
 * `deliver` turns into the answer. Only standard fetch objects and an EntryStore are used, so the same code runs
 * under Miniflare, bare workerd and Node (unit tests with a fake clock).
 */
import type { EdgeConfig, Rule } from "../config/edge-schema.ts";
import { primaryKey } from "../cache/key.ts";
import { judge, requestDirectives, type Verdict } from "../cache/policy.ts";
import { recordPurge, type ControlMark, type PurgeRequest } from "../cache/purge.ts";
import { conditionMatches, findRule } from "../cache/rules.ts";
import { sliceSettings } from "../cache/slices.ts";
import type { CacheStatusParams, XCacheStatus } from "../cache/status.ts";
import type { PeerInvalidations, SharedLocks } from "../contracts/store.ts";
import { Coalescer } from "./coalesce.ts";
import { deliver, fromEntry, gatewayTimeout, type Delivered } from "./deliver.ts";
import { fetchAndStore, storeResponse } from "./fetch-store.ts";
import { lookup, storedResponse } from "./lookup.ts";
import { pass } from "./pass.ts";
import { refresh, revalidate } from "./revalidate.ts";
import { ClientInvalidations } from "./invalidations.ts";
import { PeriodicRead, SharedLog, type StoreLogSequence } from "./shared-log.ts";
import type { ControlLease } from "./control-lease.ts";
import { deleteSlices, isSliced, slices, type SliceExit } from "./slices.ts";
import type { EntryStore } from "./store.ts";
import { release, type Engine, type OriginFn, type Outcome, type RequestContext, type Transaction } from "./transaction.ts";
import { UseCounter } from "./uses.ts";

export type { RequestContext } from "./transaction.ts";

/** A key nothing is stored under (a control character starts it): reading it tells whether the store answers. */
const STORE_PROBE_KEY = "\u0001health";

export interface EngineOptions {
  edge: EdgeConfig;
  rules: Rule[];
  store: EntryStore;
  /** Forwards a client request to the origin (see origin.ts). */
  origin: OriginFn;
  now?: () => number;
  /** Coalescing locks shared by the processes of an edge box (the store holds them); else this isolate's only. */
  locks?: SharedLocks;
  /** Several processes on one box: client invalidations reach the others' memory tiers through this. */
  peers?: PeerInvalidations;
  /**
   * With `peers`: the purge log's sequence the store's answers carry. A process that hears of a newer log than its
   * copy reads it before it judges an entry, so the control agent's batches need only the log on such a box too.
   */
  logSequence?: StoreLogSequence;
  /**
   * With a control plane: this box start (the host's BOOT_ID). Until the box's agent marks the purge log caught up
   * for it, entries stored before the start are stale (`controlGate`).
   */
  boot?: { id: string; at: number };
  /** With a control plane: the box's lease as its agent reports it; past it, stored entries are revalidated. */
  lease?: ControlLease;
}

export class EdgeCache {
  private readonly e: Engine;
  private readonly invalidations: ClientInvalidations;
  /** Client invalidations, the box's (sent again when the store was away) and the other processes', once a second. */
  private readonly invalidationReads: PeriodicRead;
  /**
   * Whether a purge recorded in the log alone reaches every process of the box at once: one process, or several that
   * hear of the log's stores from the store (EngineOptions.logSequence).
   */
  private readonly logReachesAll: boolean;

  constructor(opts: EngineOptions) {
    this.e = {
      edge: opts.edge,
      rules: opts.rules,
      store: opts.store,
      origin: opts.origin,
      now: opts.now ?? Date.now,
      coalescer: new Coalescer({ shared: opts.locks, timeoutMs: opts.edge.lock_timeout_ms }),
      shared: new SharedLog(opts.store, opts.logSequence),
      uses: new UseCounter(),
      boot: opts.boot,
      lease: opts.lease,
    };
    const invalidations = new ClientInvalidations(opts.store, opts.peers);
    this.invalidations = invalidations;
    this.logReachesAll = opts.peers === undefined || opts.logSequence !== undefined;
    this.invalidationReads = new PeriodicRead(() => invalidations.read());
  }

  /** Answers one client request (`url`: its URL, parsed already by the caller). */
  async handle(request: Request, ctx: RequestContext, url = new URL(request.url)): Promise<Response> {
    return (await this.answer(request, ctx, url)).response;
  }

  /** The answer to one client request, with what the log and metrics need to know of it. */
  async answer(request: Request, ctx: RequestContext, url = new URL(request.url)): Promise<Delivered> {
    const shared = this.e.shared;
    const lease = this.e.lease;
    if (shared.due || this.invalidationReads.due || lease?.due) {
      // Once a second the request waits for the box's shared state (a store round trip), so a purge or another
      // process's invalidation applies from the first request a second after it, however long this process was idle;
      // and for the control agent's lease (a unix-socket round trip).
      await Promise.all([shared.sync(), this.invalidationReads.run(), lease?.sync()]);
    }
    return deliver(this.e, request, await this.route(receive(this.e, request, ctx, url)));
  }

  private async route(tx: Transaction): Promise<Outcome> {
    const e = this.e;
    const { request, rule, reqCC } = tx;
    if (request.method !== "GET" && request.method !== "HEAD") {
      return pass(e, tx, (urls) => (e.edge.invalidate_on_unsafe ? this.invalidate(urls) : Promise.resolve()));
    }
    if (conditionMatches(rule?.bypass, request, tx.url)) return fetchAndStore(e, tx, "BYPASS", { fwd: "bypass" });

    // The lookup takes the key's lock when it finds nothing (with the box's locks in the store: one round trip).
    tx.found = await lookup(e, tx.key, request.headers, true);
    if (!tx.found.entry) await this.claimMissing(tx);
    let entry = storedResponse(tx.found);
    if (!entry) {
      if (reqCC.has("only-if-cached")) {
        release(tx);
        return gatewayTimeout("only-if-cached and nothing stored");
      }
      e.uses.count(tx.found.storageKey);
      return this.miss(tx, "MISS", { fwd: tx.found.marker ? "vary-miss" : "uri-miss", collapsed: tx.collapsed });
    }

    let verdict: Verdict = judge(entry.meta, reqCC, e.edge, e.now());
    if (verdict.use === "revalidate" && !verdict.forced) {
      // Coalesce the refresh: one request goes to the origin, the others wait for what it stores.
      const claim = await e.coalescer.claim(tx.found.storageKey, tx.found, tx.ctx.waitUntil.bind(tx.ctx));
      if (typeof claim === "object") tx.claim = claim;
      else {
        await entry.body?.cancel();
        if (claim === "held") await e.coalescer.wait(tx.found.storageKey);
        tx.found = await lookup(e, tx.key, request.headers);
        tx.collapsed = true;
        entry = storedResponse(tx.found);
        if (!entry) return this.miss(tx, "MISS", { fwd: "uri-miss", collapsed: true });
        verdict = judge(entry.meta, reqCC, e.edge, e.now());
      }
    }
    if (isSliced(entry)) return this.afterSlices(tx, await slices(e, tx, { at: "record", entry, verdict }));

    const key = tx.found.storageKey;
    switch (verdict.use) {
      case "fresh":
        return fromEntry(e, entry, "HIT", { hit: true, ttl: verdict.ttl, collapsed: tx.collapsed }, key);
      case "stale-ok":
        return fromEntry(e, entry, "STALE", { hit: true, ttl: verdict.ttl, detail: "max-stale" }, key);
      case "stale-while-revalidate": {
        const claim = await e.coalescer.claim(key, tx.found, tx.ctx.waitUntil.bind(tx.ctx));
        if (typeof claim !== "object") return fromEntry(e, entry, "UPDATING", { hit: true, ttl: verdict.ttl, detail: "updating" }, key);
        tx.ctx.waitUntil(refresh(e, { ...tx, claim }, entry.meta));
        return fromEntry(e, entry, "STALE", { hit: true, ttl: verdict.ttl, detail: "updating" }, key);
      }
      case "revalidate":
        if (reqCC.has("only-if-cached")) {
          release(tx);
          await entry.body?.cancel();
          return gatewayTimeout("only-if-cached and the stored response is stale");
        }
        return revalidate(e, tx, entry, verdict.forced, verdict.ttl);
    }
  }

  /**
   * Nothing usable stored (or the stored object changed). With slicing on for the rule the object may be large: the
   * slice step asks the origin for one slice and says where the request goes next; else it is fetched and stored whole.
   */
  private async miss(tx: Transaction, status: XCacheStatus, cacheStatus: CacheStatusParams): Promise<Outcome> {
    const settings = sliceSettings(this.e.edge, tx.rule);
    if (!settings) return fetchAndStore(this.e, tx, status, cacheStatus);
    return this.afterSlices(tx, await slices(this.e, tx, { at: "miss", settings, status, cacheStatus }));
  }

  /** Follows the slice step's exit: to deliver, to the whole-object step, or a miss anew (at most once: see SliceExit). */
  private afterSlices(tx: Transaction, exit: SliceExit): Promise<Outcome> | Outcome {
    switch (exit.to) {
      case "deliver":
        return exit.outcome;
      case "store whole":
        return storeResponse(this.e, tx, exit.response, exit.requestTime, exit.status, exit.cacheStatus);
      case "fetch whole":
        return fetchAndStore(this.e, tx, exit.status, exit.cacheStatus);
      case "miss":
        return this.miss(tx, exit.status, exit.cacheStatus);
    }
  }

  /**
   * Nothing stored: take the key's lock (or keep the one the lookup took), or wait for the request that holds it and
   * look again. A key stored since the lookup is looked up again rather than fetched twice.
   */
  private async claimMissing(tx: Transaction) {
    const e = this.e;
    for (let attempt = 0; attempt < 5 && !tx.found.entry; attempt++) {
      const waitUntil = tx.ctx.waitUntil.bind(tx.ctx);
      const { storageKey, lock } = tx.found;
      const claim =
        lock?.got === "taken"
          ? e.coalescer.adopt(storageKey, lock.token!, tx.found, waitUntil)
          : (lock?.got ?? (await e.coalescer.claim(storageKey, tx.found, waitUntil)));
      if (typeof claim === "object") {
        tx.claim = claim;
        return;
      }
      if (claim === "held") await e.coalescer.wait(tx.found.storageKey);
      tx.found = await lookup(e, tx.key, tx.request.headers, claim === "changed");
      tx.collapsed = claim === "held" || !!tx.found.entry;
      if (claim === "held") return; // the fetch we waited for is over: whatever it left, we go on without a lock
    }
  }

  /**
   * Purges by URL (every variant), prefix, tag, host or everything (and records the control agent's `mark` with it):
   * recorded in the purge log, which every lookup applies — the purge itself. An operator's direct call also deletes
   * hard-purged URLs' entries and says how many of the URLs had an entry here (a key is host + path + query: a URL
   * with another host or port than the clients use matches nothing).
   *
   * `logOnly`: the control agent's batches, thousands of URLs each. Only the log is written (three store calls, read,
   * write and read back, whatever the batch's size): a store call or two per URL held a running edge to a few hundred
   * purges a second. A purged entry stays on disk until the next fetch of its URL replaces it or the store evicts it,
   * never served meanwhile; once its record leaves the bounded log it is stale (the floor), as an entry purged by
   * prefix, tag or host already was. On a box with several processes the others apply it from their first store
   * answer after the log was stored (it carries the log's sequence: EngineOptions.logSequence); without that
   * sequence they would read the log up to a second later, so hard-purged entries are deleted one by one.
   */
  async purge(req: PurgeRequest, opts: { mark?: Omit<ControlMark, "at">; logOnly?: boolean } = {}): Promise<{ urls: number; stored?: number }> {
    const { rules, store, shared, now } = this.e;
    const { mark } = opts;
    const keyOf = (url: URL) => primaryKey(url, findRule(rules, "GET", url.host, url.pathname)?.query);
    await shared.update((log) => {
      const next = recordPurge(log, req, now(), keyOf, (url) => primaryKey(url, "drop"));
      // With the control agent's mark: the purge and "applied up to N" in one write.
      return mark ? { ...next, control: { ...mark, at: now() } } : next;
    });
    const urls = req.urls ?? [];
    if (opts.logOnly && this.logReachesAll) return { urls: urls.length };
    const found = await Promise.all(
      urls.map(async (u) => {
        const key = keyOf(new URL(u));
        const entry = await store.get(key).catch(() => null);
        await entry?.body?.cancel();
        if (req.soft) return entry !== null;
        // A sliced object's slices go with its record (the purge log keeps them from being served meanwhile).
        if (entry?.meta.kind === "entry" && entry.meta.sliced) await deleteSlices(store, key, entry.meta.sliced);
        return store.delete(key).catch(() => false);
      }),
    );
    return { urls: urls.length, stored: found.filter(Boolean).length };
  }

  /** Invalidation by a client's successful unsafe request (RFC 9111 §4.4), box-wide: see invalidations.ts. */
  async invalidate(urls: string[]): Promise<void> {
    const { rules } = this.e;
    const keys = urls.map((u) => {
      const url = new URL(u);
      return primaryKey(url, findRule(rules, "GET", url.host, url.pathname)?.query);
    });
    await this.invalidations.invalidate(keys);
  }

  /** Bytes of the box's shared purge-log record (operators' purges only: clients cannot grow it). */
  get purgeLogBytes(): number {
    return this.e.shared.bytes;
  }

  /** Whether the store answers a read (the health endpoint's check: a box whose disk fails must leave DNS and BGP). */
  async storeAnswers(): Promise<boolean> {
    try {
      const probe = await this.e.store.get(STORE_PROBE_KEY);
      await probe?.body?.cancel();
      return true;
    } catch {
      return false;
    }
  }

  /** Whether this edge is draining (operator call or config): its health endpoint then says so. */
  async isDraining(): Promise<boolean> {
    await this.e.shared.sync();
    return this.e.shared.current.drain?.draining ?? this.e.edge.draining;
  }

  async setDraining(draining: boolean): Promise<void> {
    await this.e.shared.update((log) => ({ ...log, drain: { draining, at: this.e.now() } }));
  }

  /** The control agent's mark in the shared log (how far the box applied the control stream), if any. */
  async controlMark(): Promise<ControlMark | undefined> {
    await this.e.shared.sync();
    return this.e.shared.current.control;
  }

  /** The control agent's mark as this isolate last read it (what its answers were judged with), without a read. */
  controlMarkNow(): ControlMark | undefined {
    return this.e.shared.current.control;
  }

  async setControlMark(mark: Omit<ControlMark, "at">): Promise<void> {
    await this.e.shared.update((log) => ({ ...log, control: { ...mark, at: this.e.now() } }));
  }

  /** The box's anycast announcement as its announcer last reported it (read with isDraining's sync). */
  anycastState(): "announced" | "withdrawn" | undefined {
    return this.e.shared.current.anycast?.state;
  }

  async setAnycastState(state: "announced" | "withdrawn"): Promise<void> {
    await this.e.shared.update((log) => ({ ...log, anycast: { state, at: this.e.now() } }));
  }
}

/** Step "receive": the request's rule, primary key and directives. */
function receive(e: Engine, request: Request, ctx: RequestContext, url: URL): Transaction {
  const rule = findRule(e.rules, request.method, url.host, url.pathname);
  const key = primaryKey(url, rule?.query);
  return {
    request,
    url,
    ctx,
    rule,
    key,
    reqCC: requestDirectives(request.headers),
    found: { storageKey: key, entry: null, mark: -1, at: 0 },
    collapsed: false,
    claim: null,
  };
}
