/**
 * The edge's operator endpoints: purge (authenticated, fanned out to every edge in the config), metrics
 * (authenticated unless configured public) and the trace ("how the CDN sees your requests" over HTTP).
 */
import type { CdnConfig } from "../config/config.ts";
import { primaryKey } from "../cache/key.ts";
import { parsePurgeRequest } from "../cache/purge.ts";
import { findRule } from "../cache/rules.ts";
import { isAuthorized, unauthorized } from "../net/admin-auth.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../metrics/registry.ts";
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

/** POST /.well-known/cdn/purge: purges here, then (unless `"fanout": false`) at every other edge with a url. */
export async function handlePurge(
  request: Request,
  config: CdnConfig,
  cache: EdgeCache,
  fetchImpl: FetchLike,
): Promise<Response> {
  const token = config.admin.token;
  if (!(await isAuthorized(request, token))) return unauthorized(!!token);
  if (request.method !== "POST") return new Response("405 use POST\n", { status: 405, headers: { allow: "POST" } });
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    return json({ error: "the body must be JSON" }, 400);
  }
  const req = parsePurgeRequest(body);
  if (typeof req === "string") return json({ error: req }, 400);
  const self = config.edge!.name;
  const results: PurgeResult[] = [];
  try {
    const { stored } = await cache.purge(req);
    results.push({ edge: self, ok: true, ...(req.urls ? { stored } : {}) });
  } catch (err) {
    results.push({ edge: self, ok: false, error: (err as Error).message });
  }
  if ((body as { fanout?: unknown }).fanout !== false) {
    const peers = config.edges.filter((e) => e.url && e.name !== self);
    results.push(
      ...(await Promise.all(
        peers.map((peer) => purgeAt(peer.name, peer.url!, req, token!, fetchImpl)),
      )),
    );
  }
  return json({ results }, results.every((r) => r.ok) ? 200 : 502);
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

/** GET /.well-known/cdn/trace[?url=…]: plain `key=value` lines, like Cloudflare's /cdn-cgi/trace. */
export function handleTrace(
  request: Request,
  config: CdnConfig,
  clientIp: string | undefined,
  locate: (ip: string) => string | undefined,
): Response {
  const url = new URL(request.url);
  const cf = (request as { cf?: Record<string, unknown> }).cf ?? {};
  let target = url;
  const asked = url.searchParams.get("url");
  if (asked && URL.canParse(asked, url)) target = new URL(asked, url);
  const rule = findRule(config.rules, "GET", target.host, target.pathname);
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
    `ts=${(Date.now() / 1000).toFixed(3)}`,
  ];
  return new Response(lines.join("\n") + "\n", { headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" } });
}

/** POST /.well-known/cdn/drain {"draining": true|false}: leave (or rejoin) DNS answers, still serving meanwhile. */
export async function handleDrain(request: Request, config: CdnConfig, cache: EdgeCache): Promise<Response> {
  if (!(await isAuthorized(request, config.admin.token))) return unauthorized(!!config.admin.token);
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    return json({ error: "the body must be JSON" }, 400);
  }
  const draining = (body as { draining?: unknown })?.draining;
  if (typeof draining !== "boolean") return json({ error: '"draining" must be true or false' }, 400);
  await cache.setDraining(draining);
  return json({ edge: config.edge!.name, draining });
}

/**
 * POST /.well-known/cdn/anycast {"state": "announced"|"withdrawn"}: the box's announcer reports its BGP announcement;
 * the health endpoint then carries it (`cdn-anycast`) for the DNS nodes' status page.
 */
export async function handleAnycast(request: Request, config: CdnConfig, cache: EdgeCache): Promise<Response> {
  if (!(await isAuthorized(request, config.admin.token))) return unauthorized(!!config.admin.token);
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    return json({ error: "the body must be JSON" }, 400);
  }
  const state = (body as { state?: unknown })?.state;
  if (state !== "announced" && state !== "withdrawn") return json({ error: '"state" must be "announced" or "withdrawn"' }, 400);
  await cache.setAnycastState(state);
  return json({ edge: config.edge!.name, anycast: state });
}
