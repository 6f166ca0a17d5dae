/**
 * The one request state the engine's steps share (Varnish's "req" and "obj" in one place), what a step ends with
 * (an Outcome, delivered by deliver.ts), and the parts every step may use (Engine).
 */
import type { EdgeConfig, Rule } from "../config/edge-schema.ts";
import type { Directives } from "../cache/directives.ts";
import type { VaryMarker } from "../cache/entry.ts";
import type { CacheStatusParams, XCacheStatus } from "../cache/status.ts";
import { headerPairs, type HeaderList } from "../cache/headers.ts";
import type { Claim, Coalescer } from "./coalesce.ts";
import type { OriginRequest } from "./origin.ts";
import type { ControlLease } from "./control-lease.ts";
import type { SharedLog } from "./shared-log.ts";
import type { EntryStore, LookupLock, StoredEntry } from "./store.ts";
import type { UseCounter } from "./uses.ts";

/** What the host gives each request: a place for work that outlives the answer, and the client's address. */
export interface RequestContext {
  waitUntil(promise: Promise<unknown>): void;
  clientIp?: string;
}

/** Forwards a client request to the origin (origin.ts). */
export type OriginFn = (client: Request, clientIp: string | undefined, req: OriginRequest) => Promise<Response>;

/** The parts every step uses; built once per isolate by EdgeCache. */
export interface Engine {
  edge: EdgeConfig;
  rules: Rule[];
  store: EntryStore;
  origin: OriginFn;
  now: () => number;
  coalescer: Coalescer;
  shared: SharedLog;
  uses: UseCounter;
  /** With a control plane: this box start, for the catch-up gate (see EngineOptions.boot). */
  boot?: { id: string; at: number };
  /** With a control plane and its agent bound: whether the box is confirmed current (see EngineOptions.lease). */
  lease?: ControlLease;
}

/** Where the entry for a request lives (the variant's key under a Vary marker) and what is there. */
export interface Lookup {
  storageKey: string;
  entry: StoredEntry | null;
  marker?: VaryMarker;
  /** Taken before the lookup began: a claim compares it to tell whether the key was stored meanwhile. */
  mark: number;
  /** Date.now() when the lookup began (the store's clock, for shared locks). */
  at: number;
  /** A lookup that asked for the lock of `storageKey` when nothing is there: what the store did (see LookupLock). */
  lock?: LookupLock;
}

/** One client request on its way through the engine. */
export interface Transaction {
  readonly request: Request;
  readonly url: URL;
  readonly ctx: RequestContext;
  /** The first operator rule that matches, if any. */
  readonly rule: Rule | undefined;
  /** The primary cache key (host + path + query as the rule keeps it). */
  readonly key: string;
  /** The request's Cache-Control directives. */
  readonly reqCC: Directives;
  found: Lookup;
  /** Answered from another request's origin fetch (Cache-Status `collapsed`). */
  collapsed: boolean;
  /** The coalescing lock this request holds for `found.storageKey`, if any. */
  claim: Claim | null;
}

/** What a path through the engine decided, before delivery (conditionals, ranges, HEAD, labels). */
export interface Outcome {
  status: number;
  statusText: string;
  /** The answer's headers, changed by deliver and made into a Response once. */
  headers: HeaderList;
  /** A stream, or the whole body in memory (the memory tier: ranges slice it, nothing streams). */
  body: ReadableStream<Uint8Array> | Uint8Array | null;
  xcs: XCacheStatus;
  cacheStatus: CacheStatusParams;
  /** Age to send, for responses that come from the cache. */
  age?: number;
  /** Body size when known (ranges need it). */
  size?: number;
  /**
   * The unchanging stored entry these headers and body are (a memory-tier copy's frozen meta): deliver makes the
   * answer headers of a plain GET once per second for it instead of per request.
   */
  template?: object;
  /** Reads a byte range of the same stored body from the store (large objects: a seek instead of a skip). */
  readRange?: (start: number, end: number) => Promise<ReadableStream<Uint8Array> | null>;
}

/** An Outcome from a Response (an origin's, or one the edge made): its parts, the headers as a list. */
export function outcomeOf(response: Response, xcs: XCacheStatus, cacheStatus: CacheStatusParams): Outcome {
  return { status: response.status, statusText: response.statusText, headers: headerPairs(response.headers), body: response.body, xcs, cacheStatus };
}

/** Ends the request's coalescing lock; `stored`: a store of the key released the shared lock already. */
export function release(tx: Transaction, stored = false) {
  tx.claim?.release({ stored });
  tx.claim = null;
}

/** Lets go of an Outcome's body (a stream is cancelled; bytes need nothing). */
export function dropBody(o: Pick<Outcome, "body">): Promise<void> | undefined {
  return o.body instanceof ReadableStream ? o.body.cancel().catch(() => undefined) : undefined;
}

/** Statuses whose responses have no body. */
export const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/**
 * A Response of the edge's: its body goes out exactly as given (workerd would otherwise encode a body whose headers
 * say Content-Encoding, or decode one on the way in: stored bytes are served as stored).
 */
export function edgeResponse(body: BodyInit | null, init: ResponseInit): Response {
  return new Response(body, { ...init, encodeBody: "manual" } as ResponseInit);
}

export function textResponse(status: number, text: string): Response {
  return new Response(text, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}

/** A short plain-text Outcome (the edge's own errors). */
export function textOutcome(status: number, text: string, xcs: XCacheStatus, cacheStatus: CacheStatusParams): Outcome {
  return { status, statusText: "", headers: [["content-type", "text/plain; charset=utf-8"]], body: new TextEncoder().encode(text), xcs, cacheStatus };
}
