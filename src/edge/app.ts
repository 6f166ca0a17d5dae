/**
 * The edge worker's HTTP surface (Hono): health, the operator endpoints (purge, metrics, trace), then everything
 * else through the cache engine.
 */
import { Hono } from "hono";
import type { CdnConfig } from "../config/config.ts";
import { clientAddress, forwardedHost, peerAddress } from "../net/client-address.ts";
import { formatIp, parseCidr, type Cidr } from "../net/ip.ts";
import { handleAnycast, handleControl, handleDrain, handleMetrics, handlePurge, handlePurgeMethod, handleTrace, type ControlBinding } from "./admin.ts";
import { parseBootId } from "../control/boot.ts";
import { CONFIG_DIGEST_HEADER } from "../contracts/config-digest.ts";
import type { FetchLike } from "../contracts/fetch.ts";
import type { PeerInvalidations, SharedLocks } from "../contracts/store.ts";
import { ANYCAST_PATH, CONTROL_PATH, DRAIN_PATH, HEALTH_PATH, METRICS_PATH, PURGE_PATH, TRACE_PATH, WELL_KNOWN_PREFIX } from "../contracts/well-known.ts";
import { isAuthorized, unauthorized } from "../net/admin-auth.ts";
import { ControlLease } from "./control-lease.ts";
import { EdgeCache } from "./engine.ts";
import { EdgeObserver, type EdgeStoreStats } from "./observe.ts";
import { CONTROL_APPLIED_HEADER, isLoop, originFetcher, ShieldPool } from "./origin.ts";
import { textResponse } from "./transaction.ts";
import { functionOutbound, functionRoute, type FunctionBindings, type FunctionTrace } from "./functions.ts";
import { FUNCTION_TRACE_CACHE_HEADER, FUNCTION_TRACE_HEADER, type CacheSteps } from "../contracts/functions.ts";
import type { GeoInfo } from "../geoip/types.ts";

/** The health answer's header naming the box's state on the control plane. */
export const CONTROL_HEADER = "cdn-control";
import type { StoreLogSequence } from "./shared-log.ts";
import type { EntryStore } from "./store.ts";
import { ClientAddresses, type DailyKey } from "../privacy/client-addresses.ts";

export interface EdgeAppOptions {
  config: CdnConfig;
  store: EntryStore;
  fetch?: FetchLike;
  now?: () => number;
  /** Where the client is, for the trace (GeoIP when the host provides it). */
  locate?: (ip: string) => string | undefined;
  log?: (line: string) => void;
  /** Coalescing locks shared by the processes of an edge box (bare workerd: held by the store process). */
  locks?: SharedLocks;
  /** Several processes on one box: client invalidations reach the others' memory tiers through this. */
  peers?: PeerInvalidations;
  /** With `peers`: the purge log's sequence the store's answers carry (EngineOptions.logSequence). */
  logSequence?: StoreLogSequence;
  /** Store and hot-tier stats for the metrics (bare workerd). */
  stats?: () => Promise<EdgeStoreStats | undefined>;
  /** With `[control]`: the box's control agent (purges and drains go through it) and this box start's id. */
  control?: ControlBinding;
  bootId?: string;
  /** `[[functions]]`: the box's function processes, and what the GeoIP knows of an address (for `request.cf`). */
  functions?: FunctionBindings;
  geoInfo?: (ip: string) => GeoInfo | undefined;
  /** The fleet's GeoIP version the edge answers with (`cdn-geoip` on the health answer: the host waits for it). */
  geoipVersion?: string;
  /** The digest of the config text this app was built from (`cdn-config` on the health answer: the fleet rollout's check). */
  configDigest?: string;
  /** The key of the day for hashed client addresses (the box host's, so that its processes agree); else a new one. */
  privacyKey?: DailyKey;
}

/** The edge for one isolate: `fetch` answers every request (the CDN's own paths first, then the cache). */
export interface EdgeApp {
  fetch(request: Request, env: unknown, ctx: { waitUntil(p: Promise<unknown>): void }): Response | Promise<Response>;
  /** A site function's own fetch() (the edge's socket for functions): through the cache, never the CDN's own paths. */
  fromFunction(request: Request, ctx: { waitUntil(p: Promise<unknown>): void }): Response | Promise<Response>;
}

/** Builds the edge application for one isolate. */
export function createEdgeApp({ config, store, fetch: fetchImpl = (i, init) => fetch(i, init), now, locate = () => undefined, log, locks, peers, logSequence, stats, control, bootId, configDigest, functions, geoInfo = () => undefined, privacyKey, geoipVersion }: EdgeAppOptions): EdgeApp {
  const edge = config.edge;
  if (!edge) throw new Error("cdn.toml has no [edge] table: this worker has no origin to serve");
  const observer = new EdgeObserver(edge.name, edge.access_log, new ClientAddresses(config.privacy, privacyKey), log);
  const shields = new ShieldPool(edge, now, fetchImpl);
  const origin = observer.wrapOrigin(
    originFetcher(edge, fetchImpl, undefined, {
      rules: config.rules,
      shields,
      onShield: (client, e) => observer.shield(client, e),
      applied: config.control ? () => cache.controlMarkNow() : undefined,
    }),
  );
  // With a control plane, entries older than this box start are stale until its agent has caught up.
  const boot = config.control ? parseBootId(bootId) : undefined;
  // With a control plane and its agent: the box's lease (stored entries revalidated while it cannot hear the fleet).
  const lease =
    config.control && control
      ? new ControlLease(() => control.fetch(new Request("http://control/status")), config.control.when_cut_off === "revalidate", now)
      : undefined;
  const cache = new EdgeCache({ edge, rules: config.rules, store, origin, now, locks, peers, logSequence, boot, lease });
  observer.metrics.onCollect(() => {
    for (const p of functions?.processes?.() ?? []) {
      const labels = { function: p.id, version: p.version };
      observer.counterFrom("parrot_edge_function_cpu_seconds_total", "CPU time of a site function's processes, by version (sampled every 2 s by the box).", labels, p.cpu_ms / 1000);
      observer.counterFrom("parrot_edge_function_watchdog_kills_total", "Processes of a site function the watchdog killed (over cpu_ms), by version.", labels, p.watchdog_kills);
    }
    observer.metrics.set("parrot_edge_purge_log_bytes", "Bytes of the shared purge-log record (operator purges only).", {}, cache.purgeLogBytes);
    for (const s of shields.states()) {
      observer.metrics.set("parrot_edge_shield_up", "1 while this edge sends fills to the shield (0: skipped after failures for origin_fail_timeout, or down by its probes).", { shield: s.name }, s.up ? 1 : 0);
      if (s.probe) for (const state of ["up", "down", "unknown", "draining"]) observer.metrics.set("parrot_edge_shield_probe", "The shield's state by this edge's probes of its health endpoint ([edge] shield_health): 1 for the current state.", { shield: s.name, state }, s.probe === state ? 1 : 0);
      // With the shield's URL: the DNS node's status page draws the tier topology from it.
      observer.metrics.set("parrot_edge_shield_skipped_until_seconds", "Unix time until which this edge skips the shield after failures; 0 while it is up.", { shield: s.name, url: s.url }, s.skippedUntil === undefined ? 0 : Math.ceil(s.skippedUntil / 1000));
    }
    if (lease) {
      const v = lease.view();
      for (const state of ["current", "lagging", "cut-off", "no-agent"]) {
        observer.metrics.set("parrot_edge_control_state", "The box on the control plane: current, lagging, cut-off, or no-agent (1 = this state).", { state }, v.state === state ? 1 : 0);
      }
      observer.metrics.set("parrot_edge_control_trusted", "1 while the box is confirmed current (its stored entries are trusted; else revalidated).", {}, v.trusted ? 1 : 0);
      observer.metrics.set("parrot_edge_control_lag_messages", "Control messages stored and not yet applied here, as of the last check.", {}, v.lag);
    }
  });
  const trusted = edge.trusted_proxies.map((c) => parseCidr(c)).filter((c): c is Cidr => c !== null);
  const clientIp = (request: Request) => {
    const bytes = clientAddress(peerAddress(request), request.headers.get("x-forwarded-for"), trusted);
    return bytes ? formatIp(bytes) : undefined;
  };

  const route = functions && config.functions.length ? functionRoute(config.functions, functions, edge.name, geoInfo, log, (id, outcome) =>
          observer.metrics.inc("parrot_edge_function_requests_total", "Requests routed to a site's edge function, by outcome (answered, threw, timeout, down, not-running).", { function: id, outcome }),
        ) : undefined;

  /** A function's own fetch() back in: which function, and whether it may go where it asks (its gate). */
  const outbound = functionOutbound(config.functions, functions ?? { get: () => undefined });

  /** Everything that is not one of the CDN's own paths: the site's function when it has one, else the cache. */
  const serve = async (
    request: Request,
    ctx: { waitUntil(p: Promise<unknown>): void },
    url?: URL,
    fromFunction = false,
    /** The trace: what the cache did for this request. */
    onSteps?: (steps: CacheSteps) => void,
  ): Promise<Response> => {
    if (isLoop(request, edge.name)) return textResponse(508, "508 loop detected: this request already passed through this edge\n");
    const started = Date.now();
    const waitUntil = (p: Promise<unknown>) => ctx.waitUntil(p);
    const probing = shields.probeIfDue(); // shield_health: a round of probes, at most every interval_ms
    if (probing) waitUntil(probing);
    let parsed = url ?? new URL(request.url);
    // An edge filling from this box (its shield) names the site's host: the object is keyed (and purged) under it.
    // It comes as X-Forwarded-Host because workerd's fetch() sends the URL's host as Host. Believed from any request
    // that came through a CDN tier (CDN-Loop), not only from listed peers: a client that sets both gains nothing it
    // could not get with Host itself (the key's host is the host the origin is asked for).
    const site = request.headers.has("cdn-loop") ? forwardedHost(request.headers.get("x-forwarded-host")) : undefined;
    const received = request; // its peer address (request.cf) stays with it
    if (site && site !== parsed.host) {
      // Built whole: URL's host setter would keep this box's port when the site's host names none.
      parsed = new URL(`${parsed.protocol}//${site}${parsed.pathname}${parsed.search}`);
      request = new Request(parsed, request);
    }
    if (route && !fromFunction) {
      const answer = await route.answer(request, parsed, () => clientIp(received));
      if (answer) {
        // One that came through the cache (its status header) was logged on the function's fetch().
        if (!answer.response.headers.has("x-cache-status")) {
          observer.functionAnswered(request, parsed, answer.response, { id: answer.id, version: functions?.version?.(answer.id) }, { get clientIp() { return clientIp(received); } }, started, waitUntil);
        }
        return answer.response;
      }
    }
    // Worked out when first asked (an origin request, the access log): a HIT without a log line never needs it.
    let ip: string | undefined | null = null;
    const context = {
      waitUntil,
      get clientIp() {
        if (ip === null) ip = clientIp(received);
        return ip;
      },
    };
    // To another tier, with a control plane: how far this box had applied purges when it judged the answer (read
    // before), so an edge that applied more does not take a copy purged since (origin.ts isBehind).
    const mark = config.control && received.headers.has("cdn-loop") ? cache.controlMarkNow() : undefined;
    const answer = await cache.answer(request, context, parsed);
    observer.answered(request, parsed, answer, context, started, waitUntil);
    onSteps?.(observer.steps(request, answer.xcs));
    if (!mark) return answer.response;
    const headers = new Headers(answer.response.headers);
    headers.set(CONTROL_APPLIED_HEADER, `${mark.stream} ${mark.seq}`);
    const r = answer.response;
    return new Response(r.body, { status: r.status, statusText: r.statusText, headers, encodeBody: "manual" } as ResponseInit);
  };

  // The CDN's own paths (Hono): health for DNS nodes' probes ("draining", 503, while the edge should leave DNS
  // answers; with [anycast] on this box, `cdn-anycast` says whether its prefixes are announced), the operator calls,
  // metrics and the trace.
  const own = new Hono();
  own.get(HEALTH_PATH, async (c) => {
    const [draining, storeOk] = await Promise.all([cache.isDraining(), cache.storeAnswers(), lease?.sync()]);
    const anycast = config.anycast?.service === "edge" ? cache.anycastState() : undefined;
    // With a control plane, `cdn-control` says whether the box hears it (current, lagging, cut-off, no-agent), and the
    // text why its cache is not trusted: DNS nodes and operators see a box that cannot know of purges.
    const ctl = lease?.view();
    const headers: Record<string, string> = {
      "cache-control": "no-store",
      ...(anycast ? { "cdn-anycast": anycast } : {}),
      ...(ctl ? { [CONTROL_HEADER]: ctl.state } : {}),
      ...(configDigest ? { [CONFIG_DIGEST_HEADER]: configDigest } : {}),
      ...(geoipVersion ? { "cdn-geoip": geoipVersion } : {}),
    };
    const note = ctl && !ctl.trusted ? ` (control: ${ctl.detail}; ${ctl.revalidating ? "revalidating every stored entry" : "serving from cache anyway"})` : "";
    if (!storeOk) return c.text(`store unavailable ${edge.name}\n`, 503, headers);
    return draining ? c.text(`draining ${edge.name}${note}\n`, 503, headers) : c.text(`ok ${edge.name}${note}\n`, 200, headers);
  });
  own.post(DRAIN_PATH, (c) => handleDrain(c.req.raw, config, cache, control));
  own.post(ANYCAST_PATH, (c) => handleAnycast(c.req.raw, config, cache));
  own.all(PURGE_PATH, (c) => handlePurge(c.req.raw, config, cache, fetchImpl, control, boot?.id));
  own.all(CONTROL_PATH, (c) => handleControl(c.req.raw, config, cache, boot?.id, lease));
  own.get(METRICS_PATH, (c) => handleMetrics(c.req.raw, config, observer, stats));
  own.get(TRACE_PATH, async (c) => {
    const request = c.req.raw;
    const run = new URL(request.url).searchParams.get("run");
    // The run sends a real request and shows what the site's function did: the operator's (the admin token).
    if (run === null || run === "0") return handleTrace(request, config, clientIp(request), locate, shields, functions?.version);
    if (!(await isAuthorized(request, config.admin.token))) return unauthorized(!!config.admin.token);
    return handleTrace(request, config, clientIp(request), locate, shields, functions?.version, (target) => traceRun(request, target, c.executionCtx));
  });
  // Metrics also at /metrics with the token; without it /metrics is the origin's page.
  own.get("/metrics", async (c) => {
    if (await isAuthorized(c.req.raw, config.admin.token)) return handleMetrics(c.req.raw, config, observer, stats);
    return serve(c.req.raw, c.executionCtx);
  });
  own.all("*", (c) => serve(c.req.raw, c.executionCtx));

  /**
   * The trace's run (`?url=…&run=1`): a GET of the target as the asking client would send it (its headers but the
   * admin token), through the site's function when it has one, then the cache and the origin; lines of each step.
   */
  const traceRun = async (asked: Request, target: URL, ctx: { waitUntil(p: Promise<unknown>): void }): Promise<string[]> => {
    const headers = new Headers(asked.headers);
    headers.delete("authorization");
    const request = new Request(target, { headers });
    const lines = [`run=GET ${target.href}`];
    const fn = await route?.trace(request, target, () => clientIp(asked));
    if (fn) {
      lines.push(...functionTraceLines(fn));
      if (fn.response) return [...lines, `status=${fn.response.status}`];
    }
    let steps: CacheSteps | undefined;
    const response = await serve(request, ctx, target, true, (s) => (steps = s));
    await response.body?.cancel();
    return [...lines, ...cacheStepLines(steps), `status=${response.status}`];
  };

  return {
    fetch(request, env, ctx) {
      // Input errors are the client's: 405 for methods a cache must not relay, 400 for a URL that does not parse
      // (workerd builds it from the Host header: two Hosts make "a, b").
      // Each property of a Request or URL is a call into the runtime: read once.
      const method = request.method;
      if (method === "CONNECT" || method === "TRACE") {
        return new Response(`405 ${method} is not served here\n`, { status: 405, headers: { allow: "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH" } });
      }
      const url = URL.parse(request.url);
      if (!url) return textResponse(400, "400 bad request: the Host header is not one valid host\n");
      // PURGE <url>: an authenticated purge of that URL; never forwarded to the origin like other methods.
      if (method === "PURGE") return handlePurgeMethod(request, config, cache, fetchImpl, control);
      // Decided once: the hot path never builds a router context.
      const path = url.pathname;
      if (path.startsWith(WELL_KNOWN_PREFIX) || path === "/metrics") return own.fetch(request, env, ctx as never);
      return serve(request, ctx, url);
    },
    async fromFunction(received, ctx) {
      const url = URL.parse(received.url);
      if (!url) return textResponse(400, "400 bad request: the Host header is not one valid host\n");
      const gate = await outbound(received, url);
      if ("answer" in gate) return gate.answer;
      const request = gate.cache;
      // A function reaches the cache only: the operator endpoints, PURGE and other methods a cache refuses stay closed.
      if (url.pathname.startsWith(WELL_KNOWN_PREFIX) || request.method === "PURGE" || request.method === "CONNECT" || request.method === "TRACE") {
        return textResponse(403, "403 an edge function reaches this CDN's cache, not its operator endpoints\n");
      }
      if (!request.headers.has(FUNCTION_TRACE_HEADER)) return serve(request, ctx, url, true);
      // A traced fetch() (the harness marks it): answered with what the cache did for it.
      const plain = new Request(request);
      plain.headers.delete(FUNCTION_TRACE_HEADER);
      let steps: CacheSteps | undefined;
      const response = await serve(plain, ctx, url, true, (s) => (steps = s));
      if (!steps) return response;
      const out = new Response(response.body, response);
      out.headers.set(FUNCTION_TRACE_CACHE_HEADER, JSON.stringify(steps));
      return out;
    },
  };
}

/** The trace's lines for what the cache did: `cache=HIT`, `origin=200 in 12 ms` (or `not asked`), `shield=`. */
export function cacheStepLines(steps: CacheSteps | undefined): string[] {
  if (!steps) return [];
  const origin = steps.origin ? `${steps.origin.status ?? "failed"} in ${steps.origin.ms} ms${steps.shield ? ` (from shield ${steps.shield})` : ""}` : "not asked";
  return [`cache=${steps.cache}`, `origin=${origin}`];
}

/** The trace's lines for what a site's function did with the request, then the cache's steps for each of its fetch() calls. */
export function functionTraceLines(t: FunctionTrace): string[] {
  const lines = [`function_ran=${t.id} ${t.version ?? "(version unknown)"}`];
  const fetches = t.report?.fetches ?? [];
  const status = t.response?.status;
  let action: string;
  if (t.outcome !== "answered") action = `${t.outcome}; on_error = ${t.onError}: ${t.response ? `answered ${status}` : "served by the cache below"}`;
  else if (fetches.some((f) => f.cache)) action = "passed to the cache";
  // A fetch() the harness did not see (the module kept its own reference to fetch when it loaded).
  else if (t.response?.headers.has("x-cache-status")) action = "passed to the cache (its fetch() was not traced)";
  else if (status !== undefined && status >= 300 && status < 400 && t.response?.headers.has("location")) action = `redirected ${status} ${t.response.headers.get("location")}`;
  else action = `answered itself ${status}`;
  lines.push(`function_action=${action}`);
  if (t.cpuMs !== undefined) lines.push(`function_cpu_ms=${t.cpuMs.toFixed(3)}`);
  for (const f of fetches) {
    lines.push(`function_fetch=${f.method} ${f.url} ${f.status ?? `failed: ${f.error ?? "no answer"}`}`);
    lines.push(...cacheStepLines(f.cache));
  }
  return lines;
}
