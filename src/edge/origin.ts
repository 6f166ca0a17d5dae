/**
 * Requests to the origin: the client's end-to-end headers, X-Forwarded-For/-Proto/-Host and Via set by us (never
 * the client's own, which would let it poison what the origin generates), CDN-Loop (RFC 8586) against loops,
 * redirects passed through rather than followed, and a time limit for the response headers.
 */
import { originsOf, type EdgeConfig, type OriginConfig, type Rule, type ShieldConfig } from "../config/edge-schema.ts";
import { primaryKey } from "../cache/key.ts";
import { findRule } from "../cache/rules.ts";
import { rendezvousOrder } from "./shields.ts";
import { HealthMonitor } from "../health/monitor.ts";
import { codingsKey } from "../cache/encoding.ts";
import { endToEnd } from "../cache/headers.ts";
import type { FetchLike } from "../contracts/fetch.ts";
import { idleLimited } from "./idle.ts";
import { withLength } from "./length-stream.ts";

/**
 * Client headers that must not reach the origin: forged forwarding data (who the client is, which scheme, host or
 * port it used) and URL or method overrides, which origin frameworks honour and the cache key does not contain.
 * Exact names, then prefixes; the edge sets its own X-Forwarded-For/-Proto/-Host afterwards.
 */
const UNTRUSTED_REQUEST_HEADERS = new Set([
  "host",
  "forwarded",
  "x-real-ip",
  "x-client-ip",
  "x-cluster-client-ip",
  "client-ip",
  "true-client-ip",
  "fastly-client-ip",
  "x-originating-ip",
  "x-remote-ip",
  "x-remote-addr",
  "x-host",
  "x-url-scheme",
  "front-end-https",
  "x-http-method",
  "x-http-method-override",
  "x-method-override",
  "x-original-url",
  "x-rewrite-url",
  "x-override-url",
]);
const UNTRUSTED_REQUEST_PREFIXES = ["x-forwarded-", "x-original-", "cf-", "x-arr-", "x-proxyuser-"];

/** Whether a client request header is one the origin must never see from a client (see above). */
export function isUntrustedRequestHeader(name: string): boolean {
  return UNTRUSTED_REQUEST_HEADERS.has(name) || UNTRUSTED_REQUEST_PREFIXES.some((p) => name.startsWith(p));
}

/** The client's request body failed (an aborted upload, a malformed chunked body): not the origin's fault. */
export class ClientBodyError extends Error {
  constructor(cause: unknown) {
    super(`the request body could not be read: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = "ClientBodyError";
  }
}

/** The origin did not answer in time. */
export class OriginTimeout extends Error {
  constructor(ms: number) {
    super(`origin sent no response headers within ${ms} ms`);
    this.name = "OriginTimeout";
  }
}

export interface OriginRequest {
  method: string;
  /** The response body fails (OriginIdle) when it stalls for origin_idle_timeout_ms (see idle.ts). */
  idleLimit?: boolean;
  /** Extra or replaced headers (conditionals for revalidation); `null` deletes. */
  headers?: Record<string, string | null>;
  body?: ReadableStream<Uint8Array> | null;
  /** Drop these client headers (e.g. Range and conditionals when the cache fetches a whole response). */
  drop?: string[];
}


/** The origin URL for a client URL: the configured origin's scheme, host and path prefix + the client's path. */
export function originUrl(origin: string, clientUrl: URL): string {
  const base = new URL(origin);
  const prefix = base.pathname.replace(/\/$/, "");
  return `${base.protocol}//${base.host}${prefix}${clientUrl.pathname}${clientUrl.search}`;
}

/**
 * Passive health of a list of upstreams (nginx's max_fails / fail_timeout): one that fails `maxFails` times in a row
 * (no response, a timeout, or a failing status) is skipped for `failTimeout` seconds; one success clears it.
 */
export class PassiveHealth {
  private readonly fails: number[];
  private readonly downUntil: number[];
  private readonly maxFails: number;
  private readonly failTimeoutMs: number;
  private readonly now: () => number;

  constructor(size: number, maxFails: number, failTimeoutMs: number, now: () => number) {
    this.maxFails = maxFails;
    this.failTimeoutMs = failTimeoutMs;
    this.now = now;
    this.fails = Array.from({ length: size }, () => 0);
    this.downUntil = Array.from({ length: size }, () => 0);
  }

  isUp(i: number): boolean {
    return this.downUntil[i]! <= this.now();
  }

  /** Until when (ms since the epoch) upstream `i` is skipped; undefined while it is up. */
  skippedUntil(i: number): number | undefined {
    return this.isUp(i) ? undefined : this.downUntil[i];
  }

  failed(i: number) {
    this.fails[i]! += 1;
    if (this.fails[i]! >= this.maxFails) {
      this.downUntil[i] = this.now() + this.failTimeoutMs;
      this.fails[i] = 0;
    }
  }

  succeeded(i: number) {
    this.fails[i] = 0;
    this.downUntil[i] = 0;
  }
}

/**
 * The origins of an edge and their passive health. Among the healthy origins of the lowest priority number, one is
 * picked by weight; when none is healthy, every origin is tried anyway.
 */
export class OriginPool {
  private readonly origins: OriginConfig[];
  private readonly health: PassiveHealth;
  private readonly random: () => number;

  constructor(edge: EdgeConfig, now: () => number = Date.now, random: () => number = Math.random) {
    this.origins = originsOf(edge);
    this.health = new PassiveHealth(this.origins.length, edge.origin_max_fails, edge.origin_fail_timeout * 1000, now);
    this.random = random;
  }

  get size(): number {
    return this.origins.length;
  }

  url(i: number): string {
    return this.origins[i]!.url;
  }

  /** The origin to try next, not among `tried`; undefined when all were tried. */
  pick(tried: Set<number>): number | undefined {
    const untried = this.origins.map((_, i) => i).filter((i) => !tried.has(i));
    if (!untried.length) return undefined;
    const healthy = untried.filter((i) => this.health.isUp(i));
    const pool = healthy.length ? healthy : untried;
    const best = Math.min(...pool.map((i) => this.origins[i]!.priority));
    const group = pool.filter((i) => this.origins[i]!.priority === best);
    let ticket = this.random() * group.reduce((n, i) => n + this.origins[i]!.weight, 0);
    for (const i of group) {
      ticket -= this.origins[i]!.weight;
      if (ticket < 0) return i;
    }
    return group[group.length - 1];
  }

  failed(i: number) {
    this.health.failed(i);
  }

  succeeded(i: number) {
    this.health.succeeded(i);
  }

  /** Origins currently skipped, for metrics and logs. */
  down(): string[] {
    return this.origins.filter((_, i) => !this.health.isUp(i)).map((o) => o.url);
  }
}

/** One shield in a key's order, as the trace and the status page show it. */
export interface ShieldView {
  name: string;
  url: string;
  up: boolean;
  /** This box itself: the key's order stops here and the request goes to the origins. */
  self: boolean;
}

/**
 * The shields of an edge (tiered cache) and their passive health (the origin_* settings). A key's shields are its
 * rendezvous order (shields.ts) up to this box itself, when this box is one of them (it is then the key's shield,
 * or the next one after those before it): a box can be an edge and a shield with one fleet-wide list.
 */
export class ShieldPool {
  readonly shields: ShieldConfig[];
  private readonly names: string[];
  private readonly health: PassiveHealth;
  private readonly self: string;
  /**
   * The shields this box fills from, tier by tier: its region's shields (unless it is a fleet-wide shield itself),
   * then the fleet-wide ones (no region). A key's order within a tier stops at this box: it owns the key there.
   */
  private readonly tiers: number[][];
  /** Active health ([edge] shield_health): probes of every other shield's health endpoint, with hysteresis. */
  private readonly monitor?: HealthMonitor;
  /** Shields the probes say are down (skipped whatever the passive health says). */
  private readonly probedDown = new Set<number>();

  constructor(edge: EdgeConfig, now: () => number = Date.now, probe?: FetchLike) {
    this.shields = edge.shields ?? [];
    this.names = this.shields.map((s) => s.name);
    this.health = new PassiveHealth(this.shields.length, edge.origin_max_fails, edge.origin_fail_timeout * 1000, now);
    this.self = edge.name;
    const indexes = this.shields.map((_, i) => i);
    const fleetWide = indexes.filter((i) => this.shields[i]!.region === undefined);
    const regional = edge.region === undefined ? [] : indexes.filter((i) => this.shields[i]!.region === edge.region);
    const aboveRegions = fleetWide.some((i) => this.names[i] === this.self);
    this.tiers = [aboveRegions ? [] : regional, fleetWide].filter((t) => t.length > 0);
    const h = edge.shield_health;
    const others = this.tiers.flat().map((i) => this.shields[i]!).filter((s) => s.name !== this.self);
    if (probe && h.interval_ms > 0 && others.length) {
      const settings = { intervalMs: h.interval_ms, timeoutMs: h.timeout_ms, downAfter: h.down_after, upAfter: h.up_after, minUp: 0 };
      this.monitor = new HealthMonitor(others.map((s) => ({ name: s.name, url: s.url })), settings, probe, now);
      this.monitor.onChange(() => this.followProbes());
    }
  }

  get size(): number {
    return this.shields.length;
  }

  /** A round of probes when one is due (the caller keeps the request alive for it: waitUntil); else undefined. */
  probeIfDue(): Promise<void> | undefined {
    return this.monitor?.due() ? this.monitor.maybeProbe() : undefined;
  }

  /** Down by probes: skipped; back up by probes: a skip that failures caused ends too. */
  private followProbes() {
    for (const s of this.monitor!.snapshot()) {
      const i = this.names.indexOf(s.name);
      if (s.state === "down") this.probedDown.add(i);
      else if (this.probedDown.delete(i) && s.state === "up") this.health.succeeded(i);
    }
  }

  private isUp(i: number): boolean {
    return this.health.isUp(i) && !this.probedDown.has(i);
  }

  /** A tier's shields in the key's order (indexes into `shields`). */
  private order(tier: number[], key: string): number[] {
    return rendezvousOrder(tier.map((i) => this.names[i]!), key).map((j) => tier[j]!);
  }

  /** The key's whole order, tier after tier, with each shield's health (for the trace). */
  view(key: string): ShieldView[] {
    return this.tiers.flatMap((tier) => this.order(tier, key).map((i) => ({ ...this.shields[i]!, up: this.isUp(i), self: this.names[i] === this.self })));
  }

  /** The shields to try for a key, in order: per tier, those before this box in the key's order that are not down. */
  candidates(key: string): number[] {
    const out: number[] = [];
    for (const tier of this.tiers) {
      for (const i of this.order(tier, key)) {
        if (this.names[i] === this.self) break;
        if (this.isUp(i)) out.push(i);
      }
    }
    return out;
  }

  failed(i: number) {
    this.health.failed(i);
  }

  succeeded(i: number) {
    this.health.succeeded(i);
  }

  /** Shields currently skipped. */
  down(): string[] {
    return this.shields.filter((_, i) => !this.isUp(i)).map((s) => s.name);
  }

  /** Every shield with its health: skipped after failures (passive), and what the probes say (active). */
  states(): ShieldHealth[] {
    return this.shields.map((s, i) => ({
      name: s.name,
      url: s.url,
      up: this.isUp(i),
      skippedUntil: this.health.skippedUntil(i),
      probe: this.monitor?.health(s.name)?.state,
    }));
  }
}

/** A shield as one edge sees it: skipped until `skippedUntil` (ms since the epoch) after failures, else up. */
export interface ShieldHealth {
  name: string;
  url: string;
  /** Fills go to it now (neither skipped after failures nor down by probes). */
  up: boolean;
  skippedUntil?: number;
  /** Its state by the probes (up, down, unknown, draining); undefined: not probed (no shield_health, or this box). */
  probe?: string;
}

/** Methods whose requests may be sent again to another origin (RFC 9110 §9.2.2), when they carry no body. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/** What happened at a shield for one request (for the metrics and the access log). */
export interface ShieldEvent {
  shield: string;
  /**
   * hit: the shield answered from its cache (an origin request avoided); miss: it went to the origin for it;
   * failed: no answer, a timeout or a 5xx of its own; behind: it had not applied a purge this box has (in both
   * cases the next shield or the origins were tried).
   */
  result: "hit" | "miss" | "failed" | "behind";
}

/**
 * On a tier's answer, how far the answering box had applied the control plane's purges (`<stream> <seq>`): an edge
 * that applied more does not take the answer (it could be a copy purged since), see `isBehind`.
 */
export const CONTROL_APPLIED_HEADER = "cdn-control-applied";

/** The tiered cache's part of the origin function: the rules (for the cache key), the shields, who hears of them. */
export interface Tiers {
  rules: Rule[];
  shields: ShieldPool;
  onShield?: (client: Request, event: ShieldEvent) => void;
  /** With a control plane: how far this box applied its purges (its agent's mark). */
  applied?: () => { stream: string; seq: number } | undefined;
}

/** A shield's answer from a box that had applied fewer of the control plane's purges than this one. */
export function isBehind(answered: string | null, ours: { stream: string; seq: number } | undefined): boolean {
  if (!ours) return false;
  const m = /^(\S+) (\d+)$/.exec(answered?.trim() ?? "");
  // No mark (a shield without the control plane, or not caught up since its start): it cannot vouch for its copies.
  if (!m) return true;
  return m[1] === ours.stream && Number(m[2]) < ours.seq;
}

/** The shield's own Cache-Status member (the last one naming it): what it says about this answer. */
function shieldMember(response: Response, shield: string): string | undefined {
  const members = (response.headers.get("cache-status") ?? "").split(",").map((m) => m.trim());
  for (let i = members.length - 1; i >= 0; i--) {
    const name = members[i]!.split(";")[0]!.trim().replace(/^"|"$/g, "");
    if (name === shield) return members[i];
  }
  return undefined;
}

/** A shield's 5xx that is its origin's failure (it says so), not its own: the shield stays in service. */
function isOriginFailureAtShield(member: string | undefined): boolean {
  return member !== undefined && /;\s*detail=("?)(origin-unreachable|origin-timeout)\1/.test(member);
}

/**
 * Builds the function that forwards a client request upstream. With shields (tiered cache), a GET or HEAD goes to
 * the key's shields first (see ShieldPool): a shield that does not answer, times out or fails with a 5xx of its own
 * is marked (passive health) and the next one is tried, then the origins. A 508 (a loop of tiers, CDN-Loop) is
 * passed on at once. Then the origins: one attempt per origin for idempotent requests without a body (connect
 * errors, timeouts and origin_retry_status move on to the next), one attempt otherwise. When every attempt fails it
 * throws, and the engine answers from the cache if stale-if-error allows.
 */
export function originFetcher(edge: EdgeConfig, fetchImpl: FetchLike = fetch, pool = new OriginPool(edge), tiers?: Tiers) {
  const retryStatus = new Set(edge.origin_retry_status);
  const shields = tiers && tiers.shields.size ? tiers.shields : undefined;
  /** The answer as the caller gets it: a body that must keep coming is watched (see idle.ts). */
  const watched = (response: Response, req: OriginRequest): Response => {
    if (!req.idleLimit || !response.body) return response;
    const limited = idleLimited(response.body, edge.origin_idle_timeout_ms);
    // A whole answer (the origin ignored Range) may go to the client as it is: keep its declared length, which a
    // JavaScript stream alone would lose (answered chunked). Slices (206) are measured by the slice reader.
    return new Response(response.status === 200 ? withLength(limited, response.headers.get("content-length")) : limited, response);
  };
  return async (client: Request, clientIp: string | undefined, req: OriginRequest): Promise<Response> => {
    const headers = forwardedHeaders(edge, client, clientIp, req);
    const retryable = IDEMPOTENT.has(req.method) && !req.body;
    const url = new URL(client.url);
    if (shields && (req.method === "GET" || req.method === "HEAD") && !req.body) {
      const key = primaryKey(url, findRule(tiers!.rules, "GET", url.host, url.pathname)?.query);
      for (const i of shields.candidates(key)) {
        const shield = shields.shields[i]!;
        let response: Response;
        try {
          response = await fetchWithTimeout(fetchImpl, originUrl(shield.url, url), { method: req.method, headers, redirect: "manual" }, edge.origin_timeout_ms);
        } catch {
          shields.failed(i);
          tiers!.onShield?.(client, { shield: shield.name, result: "failed" });
          continue;
        }
        if (isBehind(response.headers.get(CONTROL_APPLIED_HEADER), tiers!.applied?.())) {
          // It has not applied a purge this box has: its copy may be one purged since. The next shield, or the origins.
          await response.body?.cancel();
          tiers!.onShield?.(client, { shield: shield.name, result: "behind" });
          continue;
        }
        const member = shieldMember(response, shield.name);
        if (response.status >= 500 && response.status !== 508) {
          await response.body?.cancel();
          // Its origin failed: the shield is fine, and the origins are tried from here (they may answer us).
          if (isOriginFailureAtShield(member)) break;
          shields.failed(i);
          tiers!.onShield?.(client, { shield: shield.name, result: "failed" });
          continue;
        }
        shields.succeeded(i);
        tiers!.onShield?.(client, { shield: shield.name, result: member && /;\s*hit(;|$)/.test(member) ? "hit" : "miss" });
        if (response.headers.has(CONTROL_APPLIED_HEADER)) {
          // Between tiers only: not stored, not for clients.
          const headers = new Headers(response.headers);
          headers.delete(CONTROL_APPLIED_HEADER);
          response = new Response(response.body, { status: response.status, statusText: response.statusText, headers, encodeBody: "manual" } as ResponseInit);
        }
        return watched(response, req);
      }
    }
    // A client body that fails (cut off, a malformed chunk) aborts the origin request: the origin sees the
    // connection reset, never a complete body (see `forwardedBody`).
    const clientGone = new AbortController();
    let clientFailed: unknown;
    const body = req.body
      ? forwardedBody(req.body, client.headers.get("content-length"), (err) => {
          clientFailed ??= err;
          clientGone.abort(new ClientBodyError(err));
        })
      : null;
    const tried = new Set<number>();
    let lastError: unknown = new Error("no origin configured");
    for (let i = pool.pick(tried); i !== undefined; i = retryable ? pool.pick(tried) : undefined) {
      tried.add(i);
      let response: Response;
      try {
        response = await fetchWithTimeout(fetchImpl, originUrl(pool.url(i), url), {
          method: req.method,
          headers,
          body,
          redirect: "manual",
        }, edge.origin_timeout_ms, clientGone.signal);
      } catch (err) {
        if (clientFailed !== undefined) throw new ClientBodyError(clientFailed); // the origin stays healthy
        pool.failed(i);
        lastError = err;
        continue;
      }
      if (!retryStatus.has(response.status)) {
        pool.succeeded(i);
        return watched(response, req);
      }
      pool.failed(i);
      if (!retryable || tried.size === pool.size) return response;
      await response.body?.cancel();
    }
    throw lastError;
  };
}

/**
 * The client's body as the origin gets it, with its declared length when it has one (workerd then sends it with
 * that Content-Length). `onError` hears when reading it fails, and the stream then stays open: the caller aborts the
 * origin request. Erroring it instead would not do: workerd ends a chunked upload whose body stream errors with a
 * clean last chunk, and the origin would take the part it got for the whole.
 */
function forwardedBody(
  body: ReadableStream<Uint8Array>,
  declared: string | null,
  onError: (err: unknown) => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const watched = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (err) {
        onError(err);
        return; // left open (see above)
      }
      if (r.done) controller.close();
      else controller.enqueue(r.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return typeof FixedLengthStream === "function" ? withLength(watched, declared) : watched;
}

/** The request headers an origin gets (see the module comment). */
function forwardedHeaders(edge: EdgeConfig, client: Request, clientIp: string | undefined, req: OriginRequest): Headers {
  const url = new URL(client.url);
  const headers = endToEnd(client.headers, req.drop ?? []);
  for (const name of [...headers.keys()]) if (isUntrustedRequestHeader(name)) headers.delete(name);
  // The origin is asked with the codings the variant stands for (encoding.ts), so its answer suits every client of
  // that variant.
  if (headers.has("accept-encoding")) {
    const codings = codingsKey(headers.get("accept-encoding"));
    if (codings) headers.set("accept-encoding", codings);
    else headers.delete("accept-encoding");
  }
  if (clientIp) headers.set("x-forwarded-for", clientIp);
  headers.set("x-forwarded-proto", url.protocol.replace(":", ""));
  headers.set("x-forwarded-host", url.host);
  appendList(headers, "via", `1.1 ${edge.name}`);
  appendList(headers, "cdn-loop", edge.name);
  for (const [name, value] of Object.entries(req.headers ?? {})) {
    if (value === null) headers.delete(name);
    else headers.set(name, value);
  }
  return headers;
}

/**
 * fetch() that gives up (OriginTimeout) when the response headers take longer than `ms`; `cancel` aborts it at any
 * time (the client's body failed: its reason is thrown).
 */
async function fetchWithTimeout(fetchImpl: FetchLike, url: string, init: RequestInit, ms: number, cancel?: AbortSignal): Promise<Response> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new OriginTimeout(ms)), ms);
  const onCancel = () => controller.abort(cancel!.reason);
  if (cancel?.aborted) onCancel();
  else cancel?.addEventListener("abort", onCancel);
  // The origin's bytes as they are: a compressed body stays compressed (and keeps its Content-Length).
  const withSignal: RequestInit & { duplex?: string; encodeResponseBody?: string } = { ...init, signal: controller.signal, encodeResponseBody: "manual" };
  if (init.body) withSignal.duplex = "half";
  // Race the abort too: not every fetch implementation gives up on headers the moment the signal fires.
  const aborted = new Promise<never>((_, reject) =>
    controller.signal.addEventListener("abort", () => reject(controller.signal.reason)),
  );
  try {
    return await Promise.race([fetchImpl(url, withSignal), aborted]);
  } catch (err) {
    if (controller.signal.aborted) throw controller.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function appendList(headers: Headers, name: string, value: string) {
  const existing = headers.get(name);
  headers.set(name, existing ? `${existing}, ${value}` : value);
}

/** Whether a request has already passed through this edge (CDN-Loop, RFC 8586). */
export function isLoop(request: Request, edgeName: string): boolean {
  const loop = request.headers.get("cdn-loop");
  if (!loop) return false;
  return loop.split(",").some((entry) => entry.trim().split(";")[0]!.trim() === edgeName);
}
