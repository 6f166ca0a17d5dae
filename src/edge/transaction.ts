/**
 * The one request state the engine's steps share (Varnish's "req" and "obj" in one place), what a step ends with
 * (an Outcome, delivered by deliver.ts), and the parts every step may use (Engine).
 */
import type { EdgeConfig, Rule } from "../config/edge-schema.ts";
import type { Directives } from "../cache/directives.ts";
import type { VaryMarker } from "../cache/entry.ts";
import type { CacheStatusParams, XCacheStatus } from "../cache/status.ts";
import type { Claim, Coalescer } from "./coalesce.ts";
import type { OriginRequest } from "./origin.ts";
import type { SharedLog } from "./shared-log.ts";
import type { EntryStore, StoredEntry } from "./store.ts";
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
  response: Response;
  status: XCacheStatus;
  cacheStatus: CacheStatusParams;
  /** Age to send, for responses that come from the cache. */
  age?: number;
  /** Body size when known (ranges need it). */
  size?: number;
  /** The response's whole body when it is in memory (the memory tier): ranges slice it, nothing streams. */
  bytes?: Uint8Array;
  /** Reads a byte range of the same stored body from the store (large objects: a seek instead of a skip). */
  readRange?: (start: number, end: number) => Promise<ReadableStream<Uint8Array> | null>;
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
