/**
 * The edge's operator endpoints: purge (authenticated; to every edge through the control plane with `[control]`,
 * else fanned out to every edge in the config, also as the `PURGE` method), drain, the control agent's mark, metrics
 * (authenticated unless configured public) and the trace ("how the CDN sees your requests" over HTTP).
 */
import { functionFor } from "../functions/match.ts";
import type { CdnConfig } from "../config/config.ts";
import { primaryKey } from "../cache/key.ts";
import { parsePurgeRequest, type ControlMark, type PurgeRequest } from "../cache/purge.ts";
import { findRule } from "../cache/rules.ts";
import { isAuthorized, unauthorized } from "../net/admin-auth.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../metrics/registry.ts";
import type { ControlLease } from "./control-lease.ts";
import type { ShieldPool } from "./origin.ts";
import type { EdgeCache } from "./engine.ts";
import type { EdgeObserver, EdgeStoreStats } from "./observe.ts";
import type { FetchLike } from "../contracts/fetch.ts";
import { PURGE_PATH } from "../contracts/well-known.ts";

export interface PurgeResult {
  edge: string;
  ok: boolean;
  status?: number;
  error?: string;
  /** URL purges: how many of the URLs had an entry at that edge. */
  stored?: number;
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body, null, 2) + "\n", {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });

/**
 * The box's control agent (bare workerd: the CONTROL service binding to its unix socket), when `[control]` is set:
 * purges and drains are handed to it and ride the control plane instead of the direct fan-out.
 */
export interface ControlBinding {
  fetch(request: Request): Promise<Response>;
}

/** The request's body as JSON, or the 400 answer when it is not JSON. */
async function jsonBody(request: Request): Promise<unknown> {
  try {
    return await request.json();
  } catch {
    return json({ error: "the body must be JSON" }, 400);
  }
}

/** POST /.well-known/cdn/purge: `"fanout": false` purges here only; otherwise every edge (control plane or fan-out). */
export async function handlePurge(
  request: Request,
  config: CdnConfig,
  cache: EdgeCache,
  fetchImpl: FetchLike,
  control?: ControlBinding,
  boot?: string,
): Promise<Response> {
  const token = config.admin.token;
  if (!(await isAuthorized(request, token))) return unauthorized(!!token);
  if (request.method !== "POST") return new Response("405 use POST\n", { status: 405, headers: { allow: "POST" } });
  let body = await jsonBody(request);
  if (body instanceof Response) return body;
  // The control agent's own call ("fanout": false): a batch's purges with its mark ("applied up to N") in one write
  // of the log, and "log_only": the log alone, however many URLs (see EdgeCache.purge).
  let mark: Omit<ControlMark, "at"> | undefined;
  let logOnly = false;
  if (body && typeof body === "object" && ("mark" in body || "log_only" in body)) {
    const { mark: m, log_only: only, ...rest } = body as Record<string, unknown>;
    if (rest.fanout !== false) return json({ error: '"mark" and "log_only" go with "fanout": false (the control agent\'s own call)' }, 400);
    if (only !== undefined && typeof only !== "boolean") return json({ error: '"log_only" must be true or false' }, 400);
    if (m !== undefined) {
      const parsed = parseControlMark(m, boot);
      if (typeof parsed === "string") return json({ error: `mark: ${parsed}` }, 400);
      mark = parsed;
    }
    logOnly = only === true;
    body = rest;
  }
  const req = parsePurgeRequest(body);
  if (typeof req === "string") return json({ error: req }, 400);
  return purgeEverywhere(req, (body as { fanout?: unknown }).fanout !== false, config, cache, fetchImpl, control, { mark, logOnly });
}

/**
 * `PURGE <url>` with the admin token (Varnish/Fastly style): a purge of that URL, every variant, at every edge;
 * soft with `Fastly-Soft-Purge: 1`. Without the token it is refused and goes nowhere (never to the origin).
 */
export async function handlePurgeMethod(
  request: Request,
  config: CdnConfig,
  cache: EdgeCache,
  fetchImpl: FetchLike,
  control?: ControlBinding,
): Promise<Response> {
  const token = config.admin.token;
  if (!(await isAuthorized(request, token))) return unauthorized(!!token);
  await request.body?.cancel();
  const soft = request.headers.get("fastly-soft-purge") === "1";
  return purgeEverywhere({ urls: [request.url], ...(soft ? { soft } : {}) }, true, config, cache, fetchImpl, control);
}

async function purgeEverywhere(
  req: PurgeRequest,
  everywhere: boolean,
  config: CdnConfig,
  cache: EdgeCache,
  fetchImpl: FetchLike,
  control?: ControlBinding,
  here: { mark?: Omit<ControlMark, "at">; logOnly?: boolean } = {},
): Promise<Response> {
  const token = config.admin.token;
  if (everywhere && config.control) {
    // The control plane: stored durably, applied by every box's agent (this one's included); no direct fan-out.
    if (!control) return json({ stored: false, error: "[control] is set but no control agent is bound to this edge (start it with npm run edge)" }, 503);
    return forward(control, "/purge", req);
  }
  const self = config.edge!.name;
  const results: PurgeResult[] = [];
  const purgeHere = async () => {
    try {
      const { stored } = await cache.purge(req, here);
      return { edge: self, ok: true, ...(req.urls && stored !== undefined ? { stored } : {}) };
    } catch (err) {
      return { edge: self, ok: false, error: (err as Error).message };
    }
  };
  // With shields (tiered cache), the shields first, then this box and the other edges: an edge purged before its
  // shield could refill from the shield's old copy and keep it after the purge was acknowledged.
  const shields = everywhere ? (config.edge!.shields ?? []).filter((s) => s.name !== self) : [];
  const peers = everywhere ? config.edges.filter((e) => e.url && e.name !== self && !shields.some((s) => s.name === e.name)) : [];
  results.push(...(await Promise.all(shields.map((s) => purgeAt(s.name, s.url, req, token!, fetchImpl)))));
  results.unshift(await purgeHere());
  results.push(...(await Promise.all(peers.map((peer) => purgeAt(peer.name, peer.url!, req, token!, fetchImpl)))));
  return json({ results }, results.every((r) => r.ok) ? 200 : 502);
}

/** A call to the box's control agent; its answer as is, or 503 when the agent cannot be reached. */
async function forward(control: ControlBinding, path: string, body: unknown): Promise<Response> {
  try {
    const res = await control.fetch(
      new Request(`http://control${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
    );
    return new Response(res.body, { status: res.status, headers: { "content-type": "application/json", "cache-control": "no-store" } });
  } catch (err) {
    return json({ stored: false, error: `this box's control agent is not answering: ${(err as Error).message}` }, 503);
  }
}

/** Sends one purge to one edge (no further fan-out), within 10 s. The CLI uses it too. */
export async function purgeAt(
  name: string,
  baseUrl: string,
  req: object,
  token: string,
  fetchImpl: FetchLike = fetch,
): Promise<PurgeResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 10_000);
  try {
    const res = await fetchImpl(new URL(PURGE_PATH, baseUrl).href, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ ...req, fanout: false }),
      signal: controller.signal,
    });
    const text = await res.text();
    if (!res.ok) return { edge: name, ok: false, status: res.status, error: text.trim().slice(0, 200) };
    const stored = (JSON.parse(text) as { results?: PurgeResult[] }).results?.[0]?.stored;
    return { edge: name, ok: true, status: res.status, ...(stored !== undefined ? { stored } : {}) };
  } catch (err) {
    return { edge: name, ok: false, error: controller.signal.aborted ? "timed out" : (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

/** GET /metrics in Prometheus text format. */
export async function handleMetrics(
  request: Request,
  config: CdnConfig,
  observer: EdgeObserver,
  stats?: () => Promise<EdgeStoreStats | undefined>,
): Promise<Response> {
  if (!config.admin.metrics_public && !(await isAuthorized(request, config.admin.token))) {
    return unauthorized(!!config.admin.token);
  }
  const s = await stats?.().catch(() => undefined);
  if (s) observer.storeStats(s);
  return new Response(observer.metrics.expose(), { headers: { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" } });
}

/**
 * GET /.well-known/cdn/trace[?url=…]: plain `key=value` lines, like Cloudflare's /cdn-cgi/trace: how this edge would
 * serve the URL (its function, cache key, rule, shields). With `run` (the caller checked the token) the lines of a
 * real request through the function, the cache and the origin follow.
 */
export async function handleTrace(
  request: Request,
  config: CdnConfig,
  clientIp: string | undefined,
  locate: (ip: string) => string | undefined,
  shields?: ShieldPool,
  functionVersion?: (id: string) => string | undefined,
  run?: (target: URL) => Promise<string[]>,
): Promise<Response> {
  const url = new URL(request.url);
  const cf = (request as { cf?: Record<string, unknown> }).cf ?? {};
  let target = url;
  const asked = url.searchParams.get("url");
  if (asked && URL.canParse(asked, url)) target = new URL(asked, url);
  const rule = findRule(config.rules, "GET", target.host, target.pathname);
  const fn = functionFor(config.functions, target.hostname, target.pathname);
  const lines = [
    `ip=${clientIp ?? "unknown"}`,
    `edge=${config.edge!.name}`,
    `loc=${(clientIp && locate(clientIp)) || "unknown"}`,
    `http=${typeof cf.httpProtocol === "string" ? cf.httpProtocol : "unknown"}`,
    `tls=${typeof cf.tlsVersion === "string" && cf.tlsVersion ? cf.tlsVersion : url.protocol === "https:" ? "on" : "off"}`,
    `scheme=${url.protocol.replace(":", "")}`,
    `host=${url.host}`,
    `url=${target.href}`,
    `key=${primaryKey(target, rule?.query)}`,
    `rule=${rule ? rule.path : "none"}`,
    ...(fn ? [`function=${fn.id}`, `function_version=${functionVersion?.(fn.id) ?? "unknown"}`, `function_on_error=${fn.on_error}`] : []),
    ...tierLines(shields, primaryKey(target, rule?.query)),
    ...(run ? await run(target) : []),
    `ts=${(Date.now() / 1000).toFixed(3)}`,
  ];
  return new Response(lines.join("\n") + "\n", { headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" } });
}

/**
 * The trace's tiered-cache lines: the shield a fill of the key goes to now (`origin` when none: no shields, this box
 * is the key's shield, or every shield before it is down) and the key's whole order with each shield's health.
 */
function tierLines(shields: ShieldPool | undefined, key: string): string[] {
  if (!shields?.size) return [];
  const first = shields.candidates(key)[0];
  const order = shields.view(key).map((s) => `${s.name}:${s.self ? "self" : s.up ? "up" : "down"}`);
  return [`shield=${first === undefined ? "origin" : shields.shields[first]!.name}`, `shields=${order.join(",")}`];
}

/**
 * POST /.well-known/cdn/drain {"draining": true|false}: leave (or rejoin) DNS answers, still serving meanwhile.
 * It takes effect here at once; with `[control]` it is also published (durable, seen in presence), unless
 * `"fanout": false` (the agent applying a drain from the control plane).
 */
export async function handleDrain(request: Request, config: CdnConfig, cache: EdgeCache, control?: ControlBinding): Promise<Response> {
  if (!(await isAuthorized(request, config.admin.token))) return unauthorized(!!config.admin.token);
  const body = await jsonBody(request);
  if (body instanceof Response) return body;
  const draining = (body as { draining?: unknown })?.draining;
  if (typeof draining !== "boolean") return json({ error: '"draining" must be true or false' }, 400);
  await cache.setDraining(draining);
  if (!config.control || (body as { fanout?: unknown }).fanout === false) return json({ edge: config.edge!.name, draining });
  const published = control ? await forward(control, "/drain", { draining }) : undefined;
  const controlAnswer = published ? await published.json() : { stored: false, error: "no control agent is bound to this edge" };
  return json({ edge: config.edge!.name, draining, control: controlAnswer });
}

/**
 * The control agent's mark (`/.well-known/cdn/control`): GET reads it with this box start's id and the box's lease
 * (current, lagging by N, cut off since T: src/edge/control-lease.ts); POST
 * {"stream", "seq", "boot"?} records how far the box applied the control stream and, with "boot", that it has
 * caught up since this start (stored entries are trusted again).
 */
export async function handleControl(request: Request, config: CdnConfig, cache: EdgeCache, boot: string | undefined, lease?: ControlLease): Promise<Response> {
  if (!(await isAuthorized(request, config.admin.token))) return unauthorized(!!config.admin.token);
  if (request.method === "GET") {
    const mark = (await cache.controlMark()) ?? null;
    await lease?.sync();
    // caughtUp: replayed what it missed since this start; lease: whether it hears the control plane now.
    return json({ edge: config.edge!.name, boot: boot ?? null, mark, caughtUp: !!boot && mark?.boot === boot, ...(lease ? { lease: lease.view() } : {}) });
  }
  if (request.method !== "POST") return new Response("405 use GET or POST\n", { status: 405, headers: { allow: "GET, POST" } });
  const body = await jsonBody(request);
  if (body instanceof Response) return body;
  const mark = parseControlMark(body, boot);
  if (typeof mark === "string") return json({ error: mark }, 400);
  await cache.setControlMark(mark);
  return json({ edge: config.edge!.name, mark: await cache.controlMark() });
}

/** A control mark {"stream", "seq", "boot"?} as the agent sends it, or what is wrong with it. */
function parseControlMark(body: unknown, boot: string | undefined): Omit<ControlMark, "at"> | string {
  const b = (body ?? {}) as Record<string, unknown>;
  if (typeof b !== "object" || Array.isArray(b)) return "the mark must be a JSON object";
  for (const k of Object.keys(b)) if (!["stream", "seq", "boot"].includes(k)) return `unknown field "${k}"`;
  if (typeof b.stream !== "string" || !b.stream || b.stream.length > 64) return '"stream" must name the control stream';
  if (!Number.isSafeInteger(b.seq) || (b.seq as number) < 0) return '"seq" must be a stream sequence';
  if (b.boot !== undefined && (typeof b.boot !== "string" || b.boot !== boot)) return '"boot" must be this box start\'s id';
  return { stream: b.stream, seq: b.seq as number, ...(b.boot ? { boot: b.boot as string } : {}) };
}

/**
 * POST /.well-known/cdn/anycast {"state": "announced"|"withdrawn"}: the box's announcer reports its BGP announcement;
 * the health endpoint then carries it (`cdn-anycast`) for the DNS nodes' status page.
 */
export async function handleAnycast(request: Request, config: CdnConfig, cache: EdgeCache): Promise<Response> {
  if (!(await isAuthorized(request, config.admin.token))) return unauthorized(!!config.admin.token);
  const body = await jsonBody(request);
  if (body instanceof Response) return body;
  const state = (body as { state?: unknown })?.state;
  if (state !== "announced" && state !== "withdrawn") return json({ error: '"state" must be "announced" or "withdrawn"' }, 400);
  await cache.setAnycastState(state);
  return json({ edge: config.edge!.name, anycast: state });
}
