/**
 * The edge cache's request flow: look up, judge, serve or go to the origin, store, and label the answer with
 * nginx's X-Cache-Status and RFC 9211's Cache-Status. It uses only standard fetch objects and an EntryStore, so the
 * same code runs under Miniflare, bare workerd and Node (unit tests with a fake clock).
 *
 *   lookup ─┬─ nothing ──────────── (wait for a concurrent fetch of the key) ── origin ── MISS
 *           ├─ fresh ────────────── HIT
 *           ├─ stale, swr allows ── STALE (starts a background refresh) / UPDATING (one already runs)
 *           └─ stale ────────────── (wait for a concurrent refresh) ── origin, conditional when it can:
 *                                     304 → REVALIDATED · full → EXPIRED · failure → STALE if stale-if-error allows
 */
import type { EdgeConfig, Rule } from "../config/edge-schema.ts";
import type { Directives } from "../cache/directives.ts";
import { currentAgeOf, entryHeaders, type EntryMeta, type VaryMarker } from "../cache/entry.ts";
import { endToEnd, headerPairs, mergeNotModified } from "../cache/headers.ts";
import { primaryKey, variantKey, variantOf } from "../cache/key.ts";
import {
  CDN_ONLY_HEADERS,
  decideStorage,
  isOriginError,
  judge,
  physicalTtl,
  requestDirectives,
  staleIfErrorAllows,
} from "../cache/policy.ts";
import { conditionMatches, findRule } from "../cache/rules.ts";
import { appendCacheStatus, cacheStatusMember, type CacheStatusParams, type XCacheStatus } from "../cache/status.ts";
import { isNotModified, notModifiedHeaders } from "../cache/conditional.ts";
import { ifRangeMatches, multipartByteranges, parseRange, sliceStream } from "../cache/range.ts";
import { correctedInitialAge } from "../cache/freshness.ts";
import { controlGate, purgeEffect, recordPurge, type ControlMark, type PurgeRequest } from "../cache/purge.ts";
import { SharedLog } from "./shared-log.ts";
import type { EntryStore, StoredEntry } from "./store.ts";
import { OriginTimeout, type OriginRequest } from "./origin.ts";

export interface EngineOptions {
  edge: EdgeConfig;
  rules: Rule[];
  store: EntryStore;
  /** Forwards a client request to the origin (see origin.ts). */
  origin: (client: Request, clientIp: string | undefined, req: OriginRequest) => Promise<Response>;
  now?: () => number;
  /**
   * Coalescing locks shared by the processes of an edge box (the store holds them): without them, an in-isolate map
   * only. `acquire` takes a free (or expired) lock for lock_timeout_ms and says whether it got it.
   */
  locks?: KeyLocks;
  /**
   * With a control plane: this box start (the host's BOOT_ID). Until the box's agent marks the purge log caught up
   * for it, entries stored before the start are stale (`controlGate`).
   */
  boot?: { id: string; at: number };
}

export interface KeyLocks {
  acquire(key: string): Promise<boolean>;
  release(key: string): Promise<void>;
  held(key: string): Promise<boolean>;
}

export interface RequestContext {
  waitUntil(promise: Promise<unknown>): void;
  clientIp?: string;
}

/** What the engine decided, before the per-request finishing (conditionals, ranges, HEAD, labels). */
interface Outcome {
  response: Response;
  status: XCacheStatus;
  cacheStatus: CacheStatusParams;
  /** Age to send, for responses that come from the cache. */
  age?: number;
  /** Body size when known (ranges need it). */
  size?: number;
  /** Reads a byte range of the same stored body from the store (large objects: a seek instead of a skip). */
  readRange?: (start: number, end: number) => Promise<ReadableStream<Uint8Array> | null>;
}

interface Lookup {
  /** Where the entry for this request lives (the variant's key under a Vary marker). */
  storageKey: string;
  entry: StoredEntry | null;
  marker?: VaryMarker;
}

/** Request headers that would make the origin answer something other than the whole, storable response. */
const PARTIAL_REQUEST_HEADERS = ["range", "if-range", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since"];
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);
/** From this size on, a single Range is read by the store (a seek) rather than skipped through in the body. */
const RANGE_FROM_STORE_MIN = 1024 * 1024;
/** Largest body assembled in memory for a multi-range answer; larger ones get the whole body. */
const MULTIPART_LIMIT = 8 * 1024 * 1024;

export class EdgeCache {
  private readonly edge: EdgeConfig;
  private readonly rules: Rule[];
  private readonly store: EntryStore;
  private readonly origin: EngineOptions["origin"];
  private readonly now: () => number;
  private readonly locks: KeyLocks | undefined;
  /** Keys with an origin fetch under way (request coalescing), each with its owner's token. */
  private readonly inflight = new Map<string, object>();
  /** Requests seen per key, for min_uses (bounded: cleared when it grows past 100k keys). */
  private readonly uses = new Map<string, number>();
  /** The purge log and drain flag, shared with the store (restarts, the box's other processes). */
  private readonly shared: SharedLog;
  private readonly boot: EngineOptions["boot"];

  constructor(opts: EngineOptions) {
    this.edge = opts.edge;
    this.rules = opts.rules;
    this.store = opts.store;
    this.origin = opts.origin;
    this.now = opts.now ?? Date.now;
    this.locks = opts.locks;
    this.shared = new SharedLog(opts.store);
    this.boot = opts.boot;
  }

  /** Answers one client request. */
  async handle(request: Request, ctx: RequestContext): Promise<Response> {
    if (this.shared.due) {
      if (this.shared.neverSynced) await this.shared.sync(); // the first request waits: purges survive restarts
      else ctx.waitUntil(this.shared.sync());
    }
    const url = new URL(request.url);
    const rule = findRule(this.rules, request.method, url.host, url.pathname);
    if (request.method !== "GET" && request.method !== "HEAD") return this.passThrough(request, url, rule, ctx);

    const key = primaryKey(url, rule?.query);
    const reqCC = requestDirectives(request.headers);
    let outcome: Outcome;
    if (conditionMatches(rule?.bypass, request, url)) {
      outcome = await this.fetchToCache(request, ctx, rule, { storageKey: key, entry: null }, "BYPASS", { fwd: "bypass" });
    } else {
      outcome = await this.fromCacheOrOrigin(request, ctx, rule, key, reqCC);
    }
    return this.finish(request, outcome);
  }

  private async fromCacheOrOrigin(
    request: Request,
    ctx: RequestContext,
    rule: Rule | undefined,
    key: string,
    reqCC: Directives,
  ): Promise<Outcome> {
    let found = await this.lookup(key, request.headers);
    let collapsed = false;
    let claimed: (() => void) | null = null;
    if (!found.entry) {
      claimed = await this.claim(found.storageKey, ctx);
      if (!claimed) {
        await this.waitFor(found.storageKey);
        found = await this.lookup(key, request.headers);
        collapsed = true;
      } else {
        // Another request may have stored it between our lookup and our lock: look once more before the origin.
        const again = await this.lookup(key, request.headers);
        if (again.entry) {
          claimed();
          claimed = null;
          found = again;
          collapsed = true;
        }
      }
    }
    if (!found.entry || found.entry.meta.kind !== "entry") {
      if (reqCC.has("only-if-cached")) {
        claimed?.();
        return this.gatewayTimeout("only-if-cached and nothing stored");
      }
      this.countUse(found.storageKey);
      return this.fetchToCache(request, ctx, rule, found, "MISS", {
        fwd: found.marker ? "vary-miss" : "uri-miss",
        collapsed,
      }, claimed ?? undefined);
    }

    let entry = found.entry as StoredEntry & { meta: EntryMeta };
    let verdict = judge(entry.meta, reqCC, this.edge, this.now());
    if (verdict.use === "revalidate" && !verdict.forced && (claimed = await this.claim(found.storageKey, ctx))) {
      // Another request may have refreshed it between our lookup and our lock: look once more before the origin.
      const again = await this.lookup(key, request.headers);
      const fresher = again.entry?.meta.kind === "entry" ? judge(again.entry.meta, reqCC, this.edge, this.now()) : undefined;
      if (fresher?.use === "fresh") {
        claimed();
        claimed = null;
        await entry.body?.cancel();
        found = again;
        entry = again.entry as StoredEntry & { meta: EntryMeta };
        verdict = fresher;
        collapsed = true;
      } else await again.entry?.body?.cancel();
    } else if (verdict.use === "revalidate" && !verdict.forced) {
      // Someone is refreshing this entry right now: wait for it rather than stampede the origin.
      await entry.body?.cancel();
      await this.waitFor(found.storageKey);
      const again = await this.lookup(key, request.headers);
      if (again.entry?.meta.kind === "entry") {
        found = again;
        entry = again.entry as StoredEntry & { meta: EntryMeta };
        verdict = judge(entry.meta, reqCC, this.edge, this.now());
        collapsed = true;
      } else {
        return this.fetchToCache(request, ctx, rule, again, "MISS", { fwd: "uri-miss", collapsed: true });
      }
    }

    switch (verdict.use) {
      case "fresh":
        return this.fromEntry(entry, "HIT", { hit: true, ttl: verdict.ttl, collapsed }, found.storageKey);
      case "stale-ok":
        return this.fromEntry(entry, "STALE", { hit: true, ttl: verdict.ttl, detail: "max-stale" }, found.storageKey);
      case "stale-while-revalidate": {
        const done = await this.claim(found.storageKey, ctx);
        if (!done) {
          return this.fromEntry(entry, "UPDATING", { hit: true, ttl: verdict.ttl, detail: "updating" }, found.storageKey);
        }
        ctx.waitUntil(this.refresh(request, ctx, rule, found, entry.meta).finally(done));
        return this.fromEntry(entry, "STALE", { hit: true, ttl: verdict.ttl, detail: "updating" }, found.storageKey);
      }
      case "revalidate": {
        if (reqCC.has("only-if-cached")) {
          claimed?.();
          await entry.body?.cancel();
          return this.gatewayTimeout("only-if-cached and the stored response is stale");
        }
        return this.revalidate(request, ctx, rule, found, entry, verdict.forced, verdict.ttl, claimed ?? undefined);
      }
    }
  }

  /** Goes to the origin for a stored entry that may not be reused as it is. */
  private async revalidate(
    request: Request,
    ctx: RequestContext,
    rule: Rule | undefined,
    found: Lookup,
    entry: StoredEntry & { meta: EntryMeta },
    forced: boolean,
    ttl: number,
    held?: () => void,
  ): Promise<Outcome> {
    const done = held ?? this.lock(found.storageKey);
    let result: RefreshResult;
    try {
      result = await this.conditionalFetch(request, ctx, entry.meta);
    } catch (err) {
      done();
      throw err;
    }
    if (result.kind === "not-modified") {
      const updated = this.updatedEntry(entry.meta, rule, result);
      let served: StoredEntry = entry;
      if (updated) {
        // The body is stored again from a fresh read: workerd cannot pipe a tee of a cached body into the cache.
        ctx.waitUntil(this.restore(found, updated).finally(done));
        served = { meta: updated, body: entry.body };
      } else {
        ctx.waitUntil(this.store.delete(found.storageKey).catch(() => undefined).finally(done));
        served = { meta: { ...entry.meta, headers: headerPairs(mergeNotModified(entryHeaders(entry.meta), result.headers)) }, body: entry.body };
      }
      return this.fromEntry(served, "REVALIDATED", {
        fwd: forced ? "request" : "stale",
        fwdStatus: 304,
        stored: true,
      });
    }
    if (result.kind === "error" && staleIfErrorAllows(entry.meta, this.now())) {
      done();
      await result.response?.body?.cancel();
      return this.fromEntry(entry, "STALE", {
        fwd: "stale",
        fwdStatus: result.response?.status ?? 504,
        ttl,
        detail: "stale-if-error",
      });
    }
    await entry.body?.cancel();
    if (result.kind === "error" && !result.response) {
      done();
      return this.originFailure(result.error, forced ? "BYPASS" : "EXPIRED");
    }
    // A full response: it replaces the entry.
    return this.storeOutcome(request, ctx, rule, found, result.response!, result.requestTime, done, forced ? "BYPASS" : "EXPIRED", {
      fwd: forced ? "request" : "stale",
      fwdStatus: result.response!.status,
    });
  }

  /** Background refresh for stale-while-revalidate: updates or replaces the entry, leaves it on failure. */
  private async refresh(request: Request, ctx: RequestContext, rule: Rule | undefined, found: Lookup, meta: EntryMeta) {
    const result = await this.conditionalFetch(request, ctx, meta).catch(() => undefined);
    if (!result) return;
    if (result.kind === "not-modified") {
      const updated = this.updatedEntry(meta, rule, result);
      if (updated) await this.restore(found, updated);
      else await this.store.delete(found.storageKey).catch(() => undefined);
    } else if (result.kind === "full") {
      const outcome = await this.storeOutcome(request, ctx, rule, found, result.response, result.requestTime, () => {}, "EXPIRED", {});
      await outcome.stored;
      await outcome.response.body?.cancel();
    } else {
      await result.response?.body?.cancel();
    }
  }

  /** The origin's answer to a conditional request built from the stored validators. */
  private async conditionalFetch(request: Request, ctx: RequestContext, meta: EntryMeta): Promise<RefreshResult> {
    const headers: Record<string, string> = {};
    if (meta.etag) headers["if-none-match"] = meta.etag;
    if (meta.lastModified) headers["if-modified-since"] = meta.lastModified;
    const requestTime = this.now();
    let response: Response;
    try {
      response = await this.origin(request, ctx.clientIp, { method: "GET", drop: PARTIAL_REQUEST_HEADERS, headers });
    } catch (error) {
      return { kind: "error", error, requestTime };
    }
    if (response.status === 304 && (meta.etag || meta.lastModified)) {
      await response.body?.cancel();
      return { kind: "not-modified", headers: response.headers, requestTime, responseTime: this.now() };
    }
    if (isOriginError(response.status)) return { kind: "error", response, requestTime };
    return { kind: "full", response, requestTime };
  }

  /**
   * RFC 9111 §3.2/§4.3.4: a 304 refreshes the stored headers and the freshness clock. `undefined` when the updated
   * headers no longer allow storing (the entry is then dropped after this answer).
   */
  private updatedEntry(
    meta: EntryMeta,
    rule: Rule | undefined,
    r: { headers: Headers; requestTime: number; responseTime: number },
  ): EntryMeta | undefined {
    const merged = mergeNotModified(entryHeaders(meta), r.headers);
    const decision = decideStorage({
      key: meta.key,
      requestHeaders: new Headers(),
      status: meta.status,
      statusText: meta.statusText,
      headers: merged,
      requestTime: r.requestTime,
      responseTime: r.responseTime,
      rule,
      edge: this.edge,
    });
    if (!decision.store) return undefined;
    return { ...decision.meta, vary: meta.vary, size: meta.size ?? decision.meta.size };
  }

  private physicalTtl(meta: EntryMeta): number {
    const fresh = meta.noCache ? 0 : Math.max(0, meta.lifetime - currentAgeOf(meta, this.now()));
    return physicalTtl(fresh, Math.max(meta.staleWhileRevalidate, meta.staleIfError), this.edge.keep);
  }

  /** Fetches the whole response from the origin, stores it when allowed, and answers with it. */
  private async fetchToCache(
    request: Request,
    ctx: RequestContext,
    rule: Rule | undefined,
    found: Lookup,
    status: XCacheStatus,
    cacheStatus: CacheStatusParams,
    held?: () => void,
  ): Promise<Outcome> {
    const done = held ?? this.lock(found.storageKey);
    const requestTime = this.now();
    let response: Response;
    try {
      response = await this.origin(request, ctx.clientIp, { method: "GET", drop: PARTIAL_REQUEST_HEADERS });
    } catch (error) {
      done();
      return this.originFailure(error, status, cacheStatus);
    }
    const outcome = await this.storeOutcome(request, ctx, rule, found, response, requestTime, done, status, cacheStatus);
    return outcome;
  }

  /**
   * Answers with an origin response and stores it when policy allows: the body is teed, one branch to the client,
   * one to the store; `done` (the coalescing lock) is released once the store has it.
   */
  private async storeOutcome(
    request: Request,
    ctx: RequestContext,
    rule: Rule | undefined,
    found: Lookup,
    response: Response,
    requestTime: number,
    done: () => void,
    status: XCacheStatus,
    cacheStatus: CacheStatusParams,
  ): Promise<Outcome & { stored?: Promise<void> }> {
    const url = new URL(request.url);
    const decision = decideStorage({
      key: found.entry?.meta.key ?? found.marker?.key ?? primaryKey(url, rule?.query),
      requestHeaders: request.headers,
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
      requestTime,
      responseTime: this.now(),
      rule,
      edge: this.edge,
    });
    const headers = endToEnd(response.headers, CDN_ONLY_HEADERS);
    const size = lengthOf(headers);
    const allowed =
      decision.store &&
      !conditionMatches(rule?.no_store, request, url) &&
      this.usesReached(found.storageKey, rule?.min_uses ?? 1);
    if (!allowed) {
      done();
      const body = NULL_BODY_STATUS.has(response.status) ? null : response.body;
      return {
        response: new Response(body, { status: response.status, statusText: response.statusText, headers }),
        status,
        cacheStatus: { ...cacheStatus, stored: false },
        size,
      };
    }
    const meta = decision.meta;
    const [client, toStore] = teeOrNull(NULL_BODY_STATUS.has(response.status) ? null : response.body);
    // A known length was checked against max_object_bytes already; only unknown lengths need counting on the way.
    const limited = toStore && size === undefined ? limitBytes(toStore, this.edge.max_object_bytes) : toStore;
    const stored = this.putResponse(request, found, meta, decision.varyFields, limited, decision.physicalTtl)
      .catch(() => undefined)
      .finally(done);
    ctx.waitUntil(stored);
    return {
      response: new Response(client, { status: response.status, statusText: response.statusText, headers }),
      status,
      cacheStatus: { ...cacheStatus, stored: true },
      size,
      stored,
    };
  }

  /** Stores a new response, under a Vary marker when it varies. */
  private async putResponse(
    request: Request,
    found: Lookup,
    meta: EntryMeta,
    fields: string[],
    body: ReadableStream<Uint8Array> | null,
    ttl: number,
  ): Promise<void> {
    const key = meta.key;
    if (fields.length === 0) {
      await this.store.put(key, meta, body, ttl);
      return;
    }
    let marker = found.marker;
    if (!marker || marker.fields.join() !== fields.join()) {
      marker = { kind: "vary", key, fields, id: crypto.randomUUID().slice(0, 8) };
    }
    await this.store.put(key, marker, null, Math.max(ttl, this.edge.keep, 3600));
    const variant = variantOf(fields, request.headers);
    await this.store.put(variantKey(key, marker.id, variant), { ...meta, vary: variant }, body, ttl);
  }

  /** Rewrites an entry in place with new metadata (after a 304): the body is read again from the store. */
  private async restore(found: Lookup, meta: EntryMeta) {
    const current = await this.store.get(found.storageKey).catch(() => null);
    if (current?.meta.kind !== "entry") return void (await current?.body?.cancel());
    await this.store.put(found.storageKey, meta, current.body, this.physicalTtl(meta)).catch(() => undefined);
  }

  private async lookup(key: string, headers: Headers): Promise<Lookup> {
    const primary = await this.store.get(key);
    if (!primary) return { storageKey: key, entry: null };
    if (primary.meta.kind === "entry") return { storageKey: key, entry: await this.afterPurges(primary) };
    if (primary.meta.kind !== "vary") {
      await primary.body?.cancel();
      return { storageKey: key, entry: null };
    }
    const marker = primary.meta;
    await primary.body?.cancel();
    const storageKey = variantKey(key, marker.id, variantOf(marker.fields, headers));
    const variant = await this.store.get(storageKey);
    if (variant && variant.meta.kind !== "entry") {
      await variant.body?.cancel();
      return { storageKey, entry: null, marker };
    }
    return { storageKey, entry: variant ? await this.afterPurges(variant) : null, marker };
  }

  /** The entry as purges leave it: gone (hard), stale from now on (soft), or as it was. */
  private async afterPurges(entry: StoredEntry): Promise<StoredEntry | null> {
    const meta = entry.meta as EntryMeta;
    const effect = purgeEffect(this.shared.current, meta, controlGate(this.shared.current, this.boot));
    if (effect === "hard") {
      await entry.body?.cancel();
      return null;
    }
    if (effect === "soft") return { meta: { ...meta, lifetime: 0, noCache: false }, body: entry.body };
    return entry;
  }

  /**
   * Purges by URL (every variant), prefix, tag, host or everything: recorded in the purge log at once, and a hard
   * URL purge also deletes the stored entry.
   */
  async purge(req: PurgeRequest): Promise<void> {
    const keyOf = (url: URL) => primaryKey(url, findRule(this.rules, "GET", url.host, url.pathname)?.query);
    await this.shared.update((log) => recordPurge(log, req, this.now(), keyOf, (url) => primaryKey(url, "drop")));
    if (!req.soft) await Promise.all((req.urls ?? []).map((u) => this.store.delete(keyOf(new URL(u))).catch(() => undefined)));
  }

  /** Whether this edge is draining (operator call or config): its health endpoint then says so. */
  async isDraining(): Promise<boolean> {
    await this.shared.sync();
    return this.shared.current.drain?.draining ?? this.edge.draining;
  }

  async setDraining(draining: boolean): Promise<void> {
    await this.shared.update((log) => ({ ...log, drain: { draining, at: this.now() } }));
  }

  /** The control agent's mark in the shared log (how far the box applied the control stream), if any. */
  async controlMark(): Promise<ControlMark | undefined> {
    await this.shared.sync();
    return this.shared.current.control;
  }

  async setControlMark(mark: Omit<ControlMark, "at">): Promise<void> {
    await this.shared.update((log) => ({ ...log, control: { ...mark, at: this.now() } }));
  }

  /** Methods other than GET/HEAD go straight through; unsafe ones that succeed invalidate (RFC 9111 §4.4). */
  private async passThrough(request: Request, url: URL, rule: Rule | undefined, ctx: RequestContext): Promise<Response> {
    let response: Response;
    try {
      response = await this.origin(request, ctx.clientIp, { method: request.method, body: request.body });
    } catch (error) {
      return this.finish(request, this.originFailure(error, "BYPASS", { fwd: "method" }));
    }
    if (this.edge.invalidate_on_unsafe && !SAFE_METHODS.has(request.method) && response.status >= 200 && response.status < 400) {
      const urls = new Set<string>();
      for (const t of [url.href, response.headers.get("location"), response.headers.get("content-location")]) {
        if (!t || !URL.canParse(t, url)) continue;
        const target = new URL(t, url);
        if (target.host === url.host) urls.add(target.href); // only the same origin (RFC 9111 §4.4)
      }
      // A hard purge of those URLs: deleted from the store, and recorded so every process's memory tier obeys too.
      await this.purge({ urls: [...urls] }).catch(() => undefined);
    }
    const headers = endToEnd(response.headers, CDN_ONLY_HEADERS);
    const body = NULL_BODY_STATUS.has(response.status) ? null : response.body;
    return this.finish(request, {
      response: new Response(body, { status: response.status, statusText: response.statusText, headers }),
      status: "BYPASS",
      cacheStatus: { fwd: "method" },
    });
  }

  /** An answer from a stored entry; with its storage key, a Range can be read by the store itself (see finish). */
  private fromEntry(entry: StoredEntry, status: XCacheStatus, cacheStatus: CacheStatusParams, storageKey?: string): Outcome {
    const meta = entry.meta as EntryMeta;
    const body = NULL_BODY_STATUS.has(meta.status) ? null : entry.body;
    if (body !== entry.body) void entry.body?.cancel();
    const store = this.store;
    const readRange =
      storageKey !== undefined && store.getRange
        ? async (start: number, end: number) => {
            const part = await store.getRange!(storageKey, start, end);
            if (!part) return null;
            const m = part.meta;
            // Only the very entry that was judged: it may have been replaced since.
            if (m.kind === "entry" && m.responseTime === meta.responseTime && m.etag === meta.etag) return part.body;
            await part.body?.cancel();
            return null;
          }
        : undefined;
    return {
      response: new Response(body, { status: meta.status, statusText: meta.statusText, headers: entryHeaders(meta) }),
      status,
      cacheStatus,
      age: currentAgeOf(meta, this.now()),
      size: meta.size,
      readRange,
    };
  }

  private originFailure(error: unknown, status: XCacheStatus, cacheStatus: CacheStatusParams = {}): Outcome {
    const timeout = error instanceof OriginTimeout;
    const code = timeout ? 504 : 502;
    const text = timeout ? "origin timed out" : "origin unreachable";
    return {
      response: new Response(`${code} ${text}\n`, { status: code, headers: { "content-type": "text/plain; charset=utf-8" } }),
      status,
      cacheStatus: { ...cacheStatus, fwdStatus: undefined, detail: timeout ? "origin-timeout" : "origin-unreachable" },
    };
  }

  private gatewayTimeout(reason: string): Outcome {
    return {
      response: new Response(`504 ${reason}\n`, { status: 504, headers: { "content-type": "text/plain; charset=utf-8" } }),
      status: "MISS",
      cacheStatus: { detail: "only-if-cached" },
    };
  }

  /** Conditionals, ranges, HEAD, Age, Via and the two status headers: what every answer gets on the way out. */
  private async finish(request: Request, o: Outcome): Promise<Response> {
    const res = o.response;
    const headers = res.headers; // every Outcome's Response was built here, so its headers are ours to change
    if (o.age !== undefined) headers.set("age", String(Math.floor(o.age)));
    headers.set("via", headers.has("via") ? `${headers.get("via")}, 1.1 ${this.edge.name}` : `1.1 ${this.edge.name}`);
    headers.set("x-cache-status", o.status);
    headers.set("cache-status", appendCacheStatus(headers.get("cache-status"), cacheStatusMember(this.edge.name, o.cacheStatus)));
    const isRead = request.method === "GET" || request.method === "HEAD";
    let status = res.status;
    let body = res.body;
    if (isRead && status === 200 && isNotModified(request.headers, headers)) {
      await body?.cancel();
      return new Response(null, { status: 304, headers: notModifiedHeaders(headers) });
    }
    const size = o.size ?? lengthOf(headers);
    if (isRead && status === 200 && size !== undefined) {
      headers.set("accept-ranges", "bytes");
      const ranges = request.method === "GET" && request.headers.has("range")
        && ifRangeMatches(request.headers.get("if-range"), headers.get("etag"), headers.get("last-modified"))
        ? parseRange(request.headers.get("range"), size)
        : null;
      if (ranges && ranges.length === 0) {
        await body?.cancel();
        headers.set("content-range", `bytes */${size}`);
        headers.delete("content-length");
        return new Response(null, { status: 416, headers });
      }
      if (ranges && ranges.length === 1 && body) {
        const r = ranges[0]!;
        headers.set("content-range", `bytes ${r.start}-${r.end}/${size}`);
        headers.set("content-length", String(r.end - r.start + 1));
        const fromStore = o.readRange && size >= RANGE_FROM_STORE_MIN ? await o.readRange(r.start, r.end).catch(() => null) : null;
        if (fromStore) {
          await body.cancel();
          body = fromStore;
        } else body = sliceStream(body, r.start, r.end);
        status = 206;
      } else if (ranges && ranges.length > 1 && body && size <= MULTIPART_LIMIT) {
        const whole = new Uint8Array(await new Response(body).arrayBuffer());
        const boundary = crypto.randomUUID().replace(/-/g, "");
        const parts = multipartByteranges(whole, ranges, headers.get("content-type"), boundary);
        headers.set("content-type", `multipart/byteranges; boundary=${boundary}`);
        headers.set("content-length", String(parts.byteLength));
        body = new Response(parts).body;
        status = 206;
      }
    }
    if (request.method === "HEAD") {
      await body?.cancel();
      body = null;
    }
    if (status === res.status && body === res.body) return res;
    return new Response(body, { status, statusText: status === res.status ? res.statusText : undefined, headers });
  }

  /** Marks `key` as being fetched; the returned function (idempotent) ends that. */
  private lock(key: string): () => void {
    const token = {};
    if (!this.inflight.has(key)) this.inflight.set(key, token);
    const owner = this.inflight.get(key);
    return () => {
      if (owner === token && this.inflight.get(key) === token) this.inflight.delete(key);
    };
  }

  /**
   * Takes the coalescing lock of `key` for this request: here (the in-isolate map) and, with shared locks, in the
   * store too. Null when another request (of any process) holds it. The returned function (idempotent) releases.
   */
  private async claim(key: string, ctx: RequestContext): Promise<(() => void) | null> {
    if (this.inflight.has(key)) return null;
    const done = this.lock(key);
    if (!this.locks) return done;
    let got: boolean;
    try {
      got = await this.locks.acquire(key);
    } catch {
      got = true; // the store cannot be asked: coalesce within this process only
    }
    if (!got) {
      done();
      return null;
    }
    let released = false;
    return () => {
      done();
      if (released) return;
      released = true;
      ctx.waitUntil(this.locks!.release(key).catch(() => undefined));
    };
  }

  private async isHeld(key: string): Promise<boolean> {
    if (this.inflight.has(key)) return true;
    return this.locks ? this.locks.held(key).catch(() => false) : false;
  }

  /**
   * Waits (at most lock_timeout_ms) for the fetch of `key` under way to end. It polls, as nginx's proxy_cache_lock
   * does, rather than being woken: workerd may refuse to resume one request from another request's context.
   */
  private async waitFor(key: string): Promise<void> {
    const deadline = this.now() + this.edge.lock_timeout_ms;
    const started = Date.now();
    let pause = 2;
    while ((await this.isHeld(key)) && this.now() < deadline && Date.now() - started < this.edge.lock_timeout_ms) {
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 50);
    }
  }

  private countUse(key: string) {
    if (this.uses.size > 100_000) this.uses.clear();
    this.uses.set(key, (this.uses.get(key) ?? 0) + 1);
  }

  private usesReached(key: string, min: number): boolean {
    return min <= 1 || (this.uses.get(key) ?? 0) >= min;
  }
}

type RefreshResult =
  | { kind: "not-modified"; headers: Headers; requestTime: number; responseTime: number }
  | { kind: "full"; response: Response; requestTime: number }
  | { kind: "error"; response?: Response; error?: unknown; requestTime: number };

function teeOrNull(body: ReadableStream<Uint8Array> | null): [ReadableStream<Uint8Array> | null, ReadableStream<Uint8Array> | null] {
  if (!body) return [null, null];
  const [a, b] = body.tee();
  return [a, b];
}

function lengthOf(headers: Headers): number | undefined {
  const v = headers.get("content-length");
  if (v === null || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

/** Passes a body through, erroring (so the store keeps nothing) once it exceeds `max` bytes. */
function limitBytes(body: ReadableStream<Uint8Array>, max: number): ReadableStream<Uint8Array> {
  let seen = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > max) controller.error(new Error("object larger than max_object_bytes"));
        else controller.enqueue(chunk);
      },
    }),
  );
}
