/**
 * The DNS node's operator endpoints, next to DoH on its HTTP listener (Node host and worker alike):
 *   POST /admin/drain {"edge": name, "draining": bool}   take an edge out of (or back into) answers; token required
 *   POST /admin/reload   re-read cdn.toml and the GeoIP files (hosts that can); token required
 *   POST /admin/acme-challenge {"name", "value", "ttl"?}   publish an ACME DNS-01 TXT value; token required
 *   DELETE /admin/acme-challenge {"name", "value"?}        remove it (no value: every value at the name)
 *   GET  /metrics        Prometheus text: queries, answers by edge, edge health, fail-open; token unless metrics_public
 *   GET  /status         the status page (status/page.ts); GET /status.json the same data as JSON
 * The status page shows each edge's hit ratio and requests and the shields it fills from (the tier topology, with each
 * shield's passive health at each edge), read from the edge's own metrics with the [admin] token.
 */
import type { CdnConfig } from "../config/config.ts";
import type { HealthMonitor } from "../health/monitor.ts";
import { Registry, PROMETHEUS_CONTENT_TYPE } from "../metrics/registry.ts";
import { isAuthorized, unauthorized } from "../net/admin-auth.ts";
import { renderStatusPage, type EdgeStatus, type StatusData } from "../status/page.ts";
import { tierTopology, type ShieldSeen } from "../status/tiers.ts";
import { MIRRORS_PATH } from "../contracts/well-known.ts";
import { parseMirrorsStatus, type MirrorsStatus } from "../contracts/mirrors-status.ts";
import { serviceSets, type Server, type ServiceSets } from "./answer.ts";
import { checkChallenge, type ChallengeChange } from "./challenges.ts";
import type { DnsObserver } from "./observe.ts";

export const EDGE_METRICS_PATH = "/.well-known/cdn/metrics";
const STATES = ["unknown", "up", "down", "draining"] as const;
const ANYCAST_STATES = ["announced", "withdrawn", "unknown"] as const;
const SCRAPE_TIMEOUT_MS = 2_000;
/** How long a challenge value is kept when the call does not say (seconds). */
const DEFAULT_CHALLENGE_TTL = 600;

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** Re-reads the configuration: resolves with the reason when it was refused (the old one stays). */
export type ReloadHook = () => Promise<{ ok: true } | { ok: false; error: string }>;

export interface OperatorOptions {
  config: CdnConfig;
  server: Server;
  monitor: HealthMonitor;
  observer: DnsObserver;
  /** This DNS node's name on the status page. */
  node: string;
  fetchImpl?: FetchLike;
  now?: () => number;
  reload?: ReloadHook;
  /** Told about every change of the challenge records (the Node host passes them on to its other processes). */
  onChallenge?: (change: ChallengeChange) => void;
  /** The host's connections closed to make room, per listener (Node host). */
  evicted?: () => Record<string, number>;
  /** The memory of the node's processes (Node host: the primary and its workers). */
  memory?: () => ProcessMemory[];
}

/** One process's memory, in bytes. */
export interface ProcessMemory {
  pid: number;
  /** Resident set: includes the pages of the executable that every process running it shares. */
  rss: number;
  /** The resident pages private to this process (where the host can tell). */
  private?: number;
  heapUsed: number;
  heapTotal: number;
}

/** An edge's own figures, from its metrics. */
export interface EdgeFigures {
  hitRatio?: number;
  requests?: number;
  /** The shields it fills from, with their passive health at this edge (tiered cache). */
  shields?: ShieldSeen[];
}

export interface StatusJson extends StatusData {
  edges: Array<EdgeStatus & { inAnswers: boolean }>;
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body, null, 2) + "\n", {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });

/** A sample line's labels (`name="value"`, with the exposition format's escapes); undefined when malformed. */
function sampleLabels(text: string): Map<string, string> | undefined {
  const labels = new Map<string, string>();
  const re = /\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  while (re.lastIndex < text.length) {
    const m = re.exec(text);
    if (!m) return undefined;
    labels.set(m[1]!, m[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c)));
  }
  return labels;
}

/**
 * Reads parrot_edge_hit_ratio, the sum of parrot_edge_requests_total and each shield's
 * parrot_edge_shield_skipped_until_seconds and parrot_edge_shield_probe (down by probes) from Prometheus text.
 */
export function parseEdgeFigures(text: string): EdgeFigures {
  const out: EdgeFigures = {};
  const probedDown = new Set<string>();
  for (const line of text.split("\n")) {
    const m = /^(parrot_edge_hit_ratio|parrot_edge_requests_total|parrot_edge_shield_skipped_until_seconds|parrot_edge_shield_probe)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    if (m[1] === "parrot_edge_hit_ratio") out.hitRatio = v;
    else if (m[1] === "parrot_edge_requests_total") out.requests = (out.requests ?? 0) + v;
    else if (m[1] === "parrot_edge_shield_probe") {
      const labels = sampleLabels(m[2] ?? "");
      if (v > 0 && labels?.get("state") === "down" && labels.get("shield") !== undefined) probedDown.add(labels.get("shield")!);
    } else {
      const labels = sampleLabels(m[2] ?? "");
      const name = labels?.get("shield");
      const url = labels?.get("url");
      if (name === undefined || url === undefined) continue;
      (out.shields ??= []).push(v > 0 ? { name, url, skippedUntil: v * 1000 } : { name, url });
    }
  }
  for (const shield of out.shields ?? []) if (probedDown.has(shield.name)) shield.probedDown = true;
  return out;
}

/** The operator handler: a Response for its paths, undefined for any other (DoH's). */
export function createOperator(o: OperatorOptions): (request: Request) => Promise<Response> | undefined {
  const fetchImpl = o.fetchImpl ?? ((input, init) => fetch(input, init));
  const now = o.now ?? Date.now;
  const token = o.config.admin.token;
  const sites = new Map(o.server.zone.sites.map((s) => [s.name, s]));
  const urls = new Map(o.config.edges.map((e) => [e.name, e.url]));
  let scraping: Promise<Map<string, EdgeFigures>> | undefined;

  async function scrapeOne(url: string): Promise<EdgeFigures> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), SCRAPE_TIMEOUT_MS);
    try {
      const res = await fetchImpl(new URL(EDGE_METRICS_PATH, url).href, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
        signal: controller.signal,
      });
      const text = await res.text();
      return res.ok ? parseEdgeFigures(text) : {};
    } catch {
      return {};
    } finally {
      clearTimeout(timer);
    }
  }

  /** Every edge's figures (those without a url or that fail: none); requests meanwhile share one scrape. */
  function figures(): Promise<Map<string, EdgeFigures>> {
    if (scraping) return scraping;
    const all = Promise.all(
      [...urls].map(async ([name, url]) => [name, url ? await scrapeOne(url) : {}] as const),
    ).then((pairs) => new Map(pairs));
    scraping = all.finally(() => void (scraping = undefined));
    return scraping;
  }

  /** The mirror redirector's status ([redirector] public_url), for the page's mirrors section; requests meanwhile share one read. */
  const redirectorUrl = o.config.redirector?.public_url;
  let readingMirrors: Promise<MirrorsStatus | { error: string }> | undefined;
  function mirrors(): Promise<MirrorsStatus | { error: string }> | undefined {
    if (!redirectorUrl) return undefined;
    readingMirrors ??= (async () => {
      try {
        const res = await fetchImpl(new URL(MIRRORS_PATH.slice(1), redirectorUrl).href, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
        if (!res.ok) {
          await res.body?.cancel();
          return { error: `the redirector answered ${res.status}` };
        }
        return parseMirrorsStatus(await res.json()) ?? { error: "the redirector's answer is not a mirrors status document" };
      } catch (err) {
        return { error: `the redirector did not answer: ${(err as Error).message}` };
      }
    })().finally(() => void (readingMirrors = undefined));
    return readingMirrors;
  }

  /** The edges the director may name now (none of a family that answers its fallback addresses). */
  function answering(): { service: ServiceSets; names: Set<string> } {
    const service = serviceSets(o.server);
    const named = [...(service.fallback4 ? [] : service.v4), ...(service.fallback6 ? [] : service.v6)];
    return { service, names: new Set(named.map((s) => s.name)) };
  }

  async function status(): Promise<StatusJson> {
    const [figs, mirrorStatus] = await Promise.all([figures(), mirrors()]);
    const { service, names: inAnswers } = answering();
    const answers = o.observer.answerCounts();
    const snapshot = o.monitor.snapshot();
    const tiers = tierTopology(snapshot.map((h) => ({ name: h.name, shields: figs.get(h.name)?.shields })));
    return {
      zone: o.server.zone.origin,
      node: o.node,
      generatedAt: now(),
      failOpen: (service.failOpen4 && !service.fallback4) || (service.failOpen6 && !service.fallback6),
      fallback: service.fallback4 || service.fallback6,
      queries: o.observer.totalQueries(),
      shields: tiers.shields,
      mirrors: mirrorStatus,
      edges: snapshot.map((h) => {
        const site = sites.get(h.name);
        const f = figs.get(h.name) ?? {};
        return {
          name: h.name,
          url: h.url,
          ipv4: site?.ipv4,
          ipv6: site?.ipv6,
          lat: site?.lat ?? 0,
          lon: site?.lon ?? 0,
          state: h.state,
          since: h.since,
          detail: h.lastProbe?.detail,
          drained: h.drained,
          anycast: h.anycast ?? "-",
          control: h.control ?? "-",
          heartbeat: o.monitor.heartbeatState?.(h.name) ?? "-",
          inAnswers: inAnswers.has(h.name),
          answers: answers.get(h.name) ?? 0,
          hitRatio: f.hitRatio,
          requests: f.requests,
          tier: tiers.roles.get(h.name),
        };
      }),
    };
  }

  function metrics(): string {
    const r = new Registry();
    for (const q of o.observer.queryCounts())
      r.inc("parrot_dns_queries_total", "DNS queries answered, by transport, query type and response code.", { transport: q.transport, qtype: q.qtype, rcode: q.rcode }, q.count);
    const answers = o.observer.answerCounts();
    const { service, names: inAnswers } = answering();
    for (const h of o.monitor.snapshot()) {
      r.inc("parrot_dns_answers_total", "Director answers (A/AAAA) that named the edge.", { edge: h.name }, answers.get(h.name) ?? 0);
      for (const state of STATES)
        r.set("parrot_dns_edge_health", "Edge health as this DNS node's probes see it: 1 for the current state.", { edge: h.name, state }, h.state === state ? 1 : 0);
      r.set("parrot_dns_edge_drained", "1 when the operator drained the edge (config or /admin/drain).", { edge: h.name }, h.drained ? 1 : 0);
      r.set("parrot_dns_edge_in_answers", "1 when the director may name the edge now (fail-open included).", { edge: h.name }, inAnswers.has(h.name) ? 1 : 0);
      for (const state of ANYCAST_STATES)
        r.set("parrot_dns_edge_anycast", "The edge box's anycast announcement as its health answer says (unknown: no cdn-anycast header).", { edge: h.name, state }, (h.anycast ?? "unknown") === state ? 1 : 0);
    }
    const rrl = o.observer.rrlCounts();
    for (const [action, n] of [["dropped", rrl.dropped], ["slipped", rrl.slipped]] as const)
      r.inc("parrot_dns_rrl_responses_total", "UDP responses response rate limiting dropped, or sent empty with TC=1 (slipped).", { action }, n);
    for (const [listener, n] of Object.entries(o.evicted?.() ?? {}))
      r.inc("parrot_dns_connections_evicted_total", "Connections a stream listener closed to make room for new ones ([dns.limits]).", { listener }, n);
    for (const m of o.memory?.() ?? []) {
      const pid = { pid: String(m.pid) };
      r.set("parrot_dns_process_resident_bytes", "Resident memory of a process of this node (RSS: counts the Node executable's pages, which all its processes share).", pid, m.rss);
      if (m.private !== undefined) r.set("parrot_dns_process_private_bytes", "Resident memory private to a process of this node (what it adds to the machine).", pid, m.private);
      r.set("parrot_dns_process_heap_used_bytes", "V8 heap in use in a process of this node.", pid, m.heapUsed);
      r.set("parrot_dns_process_heap_total_bytes", "V8 heap reserved by a process of this node.", pid, m.heapTotal);
    }
    if (o.server.dnssec)
      r.inc("parrot_dns_dnssec_signatures_total", "RRSIGs this process made (the rest of the answers' signatures came from its caches).", {}, o.server.dnssec.signatures);
    const failOpen = (service.failOpen4 && !service.fallback4) || (service.failOpen6 && !service.fallback6);
    r.set("parrot_dns_fail_open", "1 when too few edges are in service and the director answers with all of them.", {}, failOpen ? 1 : 0);
    for (const [family, on] of [["ipv4", service.fallback4], ["ipv6", service.fallback6]] as const)
      r.set("parrot_dns_fallback", "1 when too few edges of the family are in service and the director answers its fallback addresses.", { family }, on ? 1 : 0);
    return r.expose();
  }

  async function drain(request: Request): Promise<Response> {
    if (!(await isAuthorized(request, token))) return unauthorized(!!token);
    if (request.method !== "POST") return new Response("405 use POST\n", { status: 405, headers: { allow: "POST" } });
    let body: { edge?: unknown; draining?: unknown };
    try {
      body = (await request.json()) as typeof body;
    } catch {
      return json({ error: "the body must be JSON" }, 400);
    }
    if (typeof body?.edge !== "string") return json({ error: '"edge" must be an edge name' }, 400);
    if (typeof body.draining !== "boolean") return json({ error: '"draining" must be true or false' }, 400);
    if (!o.monitor.setDrained(body.edge, body.draining)) return json({ error: `no edge named ${body.edge}` }, 404);
    const h = o.monitor.health(body.edge)!;
    return json({ edge: body.edge, draining: h.drained, state: h.state });
  }

  async function reload(request: Request): Promise<Response> {
    if (!(await isAuthorized(request, token))) return unauthorized(!!token);
    if (request.method !== "POST") return new Response("405 use POST\n", { status: 405, headers: { allow: "POST" } });
    if (!o.reload) return json({ error: "this host cannot reload: its configuration is not a file" }, 501);
    const result = await o.reload();
    return result.ok ? json({ ok: true }) : json({ ok: false, error: result.error }, 422);
  }

  /** The ACME client's contract (issue 10): add or remove a challenge TXT value. */
  async function acmeChallenge(request: Request): Promise<Response> {
    if (!(await isAuthorized(request, token))) return unauthorized(!!token);
    if (request.method !== "POST" && request.method !== "DELETE")
      return new Response("405 use POST or DELETE\n", { status: 405, headers: { allow: "POST, DELETE" } });
    const store = o.server.challenges;
    // Compact JSON, exactly as the contract writes it: {"ok":true}.
    const reply = (body: unknown, status = 200) =>
      new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", "cache-control": "no-store" } });
    if (!store) return reply({ ok: false, error: "this host keeps no challenge records" }, 501);
    const bad = (error: string) => reply({ ok: false, error }, 400);
    let body: { name?: unknown; value?: unknown; ttl?: unknown };
    try {
      body = (await request.json()) as typeof body;
    } catch {
      return bad("the body must be JSON");
    }
    if (typeof body !== "object" || body === null) return bad("the body must be a JSON object");
    const zone = o.server.zone;
    const adding = request.method === "POST";
    const problem = checkChallenge(body.name, body.value, zone.origin, adding);
    if (problem) return bad(problem);
    const name = body.name as string;
    let change: ChallengeChange;
    if (adding) {
      const ttl = body.ttl ?? DEFAULT_CHALLENGE_TTL;
      if (typeof ttl !== "number" || !Number.isInteger(ttl) || ttl < 1 || ttl > 3600) return bad('"ttl" must be whole seconds from 1 to 3600');
      if (zone.nodes.get(name.toLowerCase().replace(/\.$/, ""))?.has("CNAME")) return bad(`"name" ${name} is a CNAME in the zone`);
      const added = store.add(name, body.value as string, ttl);
      if (added === "full") return reply({ ok: false, error: `at most ${store.max} challenge values are held; remove some first` }, 507);
      change = added;
    } else change = store.remove(name, body.value as string | undefined);
    o.onChallenge?.(change);
    return reply({ ok: true });
  }

  return (request) => {
    const path = new URL(request.url).pathname;
    switch (path) {
      case "/admin/drain":
        return drain(request);
      case "/admin/reload":
        return reload(request);
      case "/admin/acme-challenge":
        return acmeChallenge(request);
      case "/metrics":
        return (async () => {
          if (!o.config.admin.metrics_public && !(await isAuthorized(request, token))) return unauthorized(!!token);
          return new Response(metrics(), { headers: { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" } });
        })();
      case "/status":
        return status().then(
          (d) => new Response(renderStatusPage(d), { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } }),
        );
      case "/status.json":
        return status().then((d) => json(d));
      default:
        return undefined;
    }
  };
}
