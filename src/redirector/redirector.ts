/**
 * The mirror redirector: its state (the origin's catalog, every mirror's freshness and health, the chooser) and its
 * fetch handler. The host (src/node/redirector-host.ts) gives it the client's address from the connection, the
 * GeoIP lookup, and runs `refreshOrigin` and `scanRound` on a timer; everything here is pure over an injected fetch
 * and clock, so tests drive it without timers.
 */
import type { CdnConfig } from "../config/config.ts";
import type { MirrorConfig, RedirectorConfig } from "../config/redirector-schema.ts";
import type { FetchLike } from "../contracts/fetch.ts";
import { METRICS_PATH, MIRRORS_PATH, WELL_KNOWN_PREFIX } from "../contracts/well-known.ts";
import type { MirrorsStatus } from "../contracts/mirrors-status.ts";
import { globToRegExp, resolvedPath } from "../cache/rules.ts";
import { continentOf } from "../geoip/countries.ts";
import type { GeoIp } from "../geoip/geoip.ts";
import { Registry } from "../metrics/registry.ts";
import { isAuthorized, unauthorized } from "../net/admin-auth.ts";
import { clientAddress } from "../net/client-address.ts";
import { formatIp, inCidr, parseCidr, parseIp, type Cidr } from "../net/ip.ts";
import { aptMirrorListAnswer, cdnAnswer, METALINK_TYPE, metalinkAnswer, mirrorListEntries, mirrorListJson, mirrorListPage, redirectAnswer } from "./answers.ts";
import { Catalog } from "./catalog.ts";
import { Chooser, type ClientLocation } from "./choose.ts";
import { MirrorState, type MirrorLocation } from "./mirror-state.ts";
import { bounded, readOriginFiles, scanMirror, urlFor } from "./scan.ts";
import { DailyStats, type DayReport, type Outcome } from "./stats.ts";
import { applyListing, parseRsyncListing } from "./rsync-list.ts";

export { MIRRORS_PATH } from "../contracts/well-known.ts";

export interface RedirectorOptions {
  config: CdnConfig;
  geoip?: GeoIp;
  fetch?: FetchLike;
  now?: () => number;
  log?: (line: string) => void;
  /**
   * The redirector this one replaces (a reload): its catalog, and the checks of every mirror whose url and paths are
   * unchanged, carry over, so a reload does not send every download to the CDN until the mirrors are scanned again.
   */
  previous?: Redirector;
  /** Lists a mirror's rsync module (`[[mirrors]] rsync`); without it, mirrors are scanned over HTTP only. */
  listRsync?: (url: string, timeoutMs: number) => Promise<string>;
  /** Given the finished day's statistics when a new day's first request comes (the host writes them). */
  onDay?: (report: DayReport) => void;
}

/** A mirror's location: its configured coordinates and country, else what the GeoIP data says of its address. */
export function mirrorLocation(m: MirrorConfig, geoip: GeoIp | undefined): MirrorLocation {
  const host = new URL(m.url).hostname.replace(/^\[|\]$/g, "");
  const address = m.address ?? (parseIp(host) ? host : undefined);
  const found = address && geoip ? geoip.lookup(address)?.info : undefined;
  const country = m.country ?? found?.country;
  return {
    lat: m.lat ?? found?.lat,
    lon: m.lon ?? found?.lon,
    country,
    continent: m.continent ?? found?.continent ?? continentOf(country),
    asn: m.asn ?? found?.asn,
  };
}

export class Redirector {
  readonly cfg: RedirectorConfig;
  readonly catalog: Catalog;
  readonly mirrors: MirrorState[];
  readonly chooser: Chooser;
  readonly metrics = new Registry();
  /** Requests by file, mirror, country and CDN reason for the day (kept across a reload). */
  readonly stats: DailyStats;
  readonly config: CdnConfig;
  private readonly geoip?: GeoIp;
  private readonly fetchImpl: FetchLike;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly onDay?: (report: DayReport) => void;
  private readonly listRsync?: (url: string, timeoutMs: number) => Promise<string>;
  private readonly answers: RegExp[];
  private readonly never: RegExp[];
  private readonly networks: { cidr: Cidr; locateAs: string }[];
  private readonly trusted: Cidr[];
  private readonly cursors = new Map<MirrorState, number>();
  /** When the origin's lists were last read, and why not when they could not be. */
  originReadAt?: number;
  originError?: string;

  constructor({ config, geoip, fetch: fetchImpl = (i, init) => fetch(i, init), now = Date.now, log = () => {}, previous, onDay, listRsync }: RedirectorOptions) {
    if (!config.redirector) throw new Error("cdn.toml has no [redirector] table");
    this.config = config;
    this.cfg = config.redirector;
    this.geoip = geoip;
    this.fetchImpl = fetchImpl;
    this.now = now;
    this.log = log;
    this.onDay = onDay;
    this.listRsync = listRsync;
    this.stats = previous?.stats ?? new DailyStats(now);
    this.catalog = previous?.catalog ?? new Catalog();
    this.mirrors = config.mirrors.map((m, i) => new MirrorState(m, i, mirrorLocation(m, geoip)));
    for (const m of this.mirrors) {
      const old = previous?.mirrors.find((o) => o.config.name === m.config.name);
      if (old && old.config.url === m.config.url && JSON.stringify(old.config.paths) === JSON.stringify(m.config.paths)) {
        m.takeChecksFrom(old);
        this.cursors.set(m, previous!.cursors.get(old) ?? 0);
      } else m.follow(this.catalog);
    }
    this.chooser = new Chooser(this.mirrors, { spreadKm: this.cfg.spread_km, alternatives: this.cfg.alternatives, maxFailures: this.cfg.max_failures });
    this.answers = this.cfg.paths.map(globToRegExp);
    this.never = this.cfg.never_redirect.map(globToRegExp);
    this.networks = this.cfg.networks.map((n) => ({ cidr: parseCidr(n.cidr)!, locateAs: n.locate_as }));
    this.trusted = this.cfg.trusted_proxies.map((c) => parseCidr(c)!);
  }

  /** Where a client is: a configured network's stand-in address, else its own, through the GeoIP data. */
  locate(ip: string | undefined): ClientLocation {
    const bytes = ip ? parseIp(ip) : null;
    if (!bytes) return {};
    const net = this.networks.find((n) => inCidr(bytes, n.cidr));
    const info = this.geoip?.lookup(net ? net.locateAs : bytes)?.info;
    if (!info) return {};
    return { lat: info.lat, lon: info.lon, country: info.country, continent: info.continent ?? continentOf(info.country), asn: info.asn };
  }

  /** Reads the origin's lists again; on failure the last good catalog stays (and says why on the status page). */
  async refreshOrigin(): Promise<void> {
    try {
      const files = await readOriginFiles(this.fetchImpl, this.cfg, this.catalog);
      const { added, changed, removed } = this.catalog.update(files, this.now());
      for (const m of this.mirrors) m.follow(this.catalog, changed);
      this.originReadAt = this.now();
      this.originError = undefined;
      if (added.length || changed.length || removed.length) this.log(JSON.stringify({ redirector: "origin", files: this.catalog.size, added: added.length, changed: changed.length, removed: removed.length }));
    } catch (err) {
      this.originError = (err as Error).message;
      this.log(JSON.stringify({ redirector: "origin", error: this.originError }));
    }
  }

  /**
   * One scan round of every enabled mirror (scan_mirrors_at_once at a time, each bounded by scan_concurrency); with
   * `only`, of those it picks (with [control], the mirrors this box scans for the fleet).
   */
  async scanRound(only: (m: MirrorState) => boolean = () => true): Promise<void> {
    const traces = new Map<string, Promise<string | undefined>>();
    const originTrace = (path: string) => {
      let t = traces.get(path);
      if (!t) {
        t = this.fetchImpl(urlFor(this.cfg.origin, path), { signal: AbortSignal.timeout(this.cfg.scan_timeout_ms) })
          .then((r) => (r.ok ? r.text() : (void r.body?.cancel(), undefined)))
          .catch(() => undefined);
        traces.set(path, t);
      }
      return t;
    };
    await bounded(
      this.mirrors.filter((m) => m.config.enabled && !m.config.maintenance && only(m)),
      this.cfg.scan_mirrors_at_once,
      async (m) => {
        const wasUp = m.usable(this.cfg.max_failures);
        if (await this.scanByRsync(m)) return this.logHealth(m, wasUp);
        const trace = m.config.trace ? await originTrace(m.config.trace) : undefined;
        const r = await scanMirror(this.fetchImpl, m, this.catalog, this.cfg, { now: this.now, cursor: this.cursors.get(m) ?? 0, originTrace: trace });
        this.cursors.set(m, r.cursor);
        this.logHealth(m, wasUp);
      },
    );
  }

  private logHealth(m: MirrorState, wasUp: boolean) {
    const up = m.usable(this.cfg.max_failures);
    if (up !== wasUp) this.log(JSON.stringify({ redirector: "mirror", mirror: m.config.name, up, failures: m.failures, error: m.lastError }));
  }

  /**
   * A mirror with an rsync module: one listing checks every file. True when it did; a failed listing counts as a
   * failure of the mirror, and the round goes on over HTTP (the module may be down while the web server is not).
   */
  private async scanByRsync(m: MirrorState): Promise<boolean> {
    if (!m.config.rsync || !this.listRsync) return false;
    try {
      const found = applyListing(m, this.catalog, parseRsyncListing(await this.listRsync(m.config.rsync, this.cfg.scan_timeout_ms)));
      m.lastScan = this.now();
      this.log(JSON.stringify({ redirector: "rsync", mirror: m.config.name, ...found }));
      return true;
    } catch (err) {
      m.recordFailure((err as Error).message);
      this.log(JSON.stringify({ redirector: "rsync", mirror: m.config.name, error: (err as Error).message }));
      return false;
    }
  }

  /** The client's address: the connection's peer, or (behind a trusted proxy) the X-Forwarded-For entry before it. */
  clientIp(request: Request, peer: string): string | undefined {
    const bytes = clientAddress(peer, request.headers.get("x-forwarded-for"), this.trusted);
    return bytes ? formatIp(bytes) : undefined;
  }

  /** Answers one request; `peer` is the connection's remote address (the host's, never a header). */
  async handle(request: Request, peer: string): Promise<Response> {
    const url = new URL(request.url);
    const method = request.method;
    if (url.pathname.startsWith(WELL_KNOWN_PREFIX)) return this.own(request, url);
    if (method !== "GET" && method !== "HEAD") return new Response(`405 ${method} is not served here\n`, { status: 405, headers: { allow: "GET, HEAD" } });
    const path = resolvedPath(url.pathname);
    const ip = this.clientIp(request, peer);
    const client = this.locate(ip);
    const country = client.country ?? "unknown";
    if (this.cfg.apt_mirrorlist && path === this.cfg.apt_mirrorlist) {
      const archive = this.cfg.apt_archive!;
      const probe = `${archive}pool/`;
      const ranked = this.chooser
        .ranked(client)
        .filter((r) => r.mirror.usable(this.cfg.max_failures) && r.mirror.carriesPath(probe) && !r.mirror.hasWrongUnder(archive, this.catalog))
        .slice(0, this.cfg.alternatives);
      this.metrics.inc("parrot_redirector_apt_lists_total", "apt mirror lists served, by client country.", { country });
      this.count("apt-list", { country });
      return aptMirrorListAnswer(archive, ranked, this.cfg.cdn);
    }
    if (!this.answers.some((re) => re.test(path))) return new Response("404 not a path the redirector answers for\n", { status: 404, headers: { "content-type": "text/plain; charset=utf-8" } });
    if (this.never.some((re) => re.test(path))) {
      this.metrics.inc("parrot_redirector_cdn_total", "Requests served by the CDN itself, by reason and client country.", { reason: "never-redirect", country });
      this.count("cdn", { reason: "never-redirect", country });
      return this.proxy(request, urlFor(this.cfg.cdn, path) + url.search);
    }
    const file = this.catalog.get(path);
    const chosen = file && file.size !== undefined ? this.chooser.choose(client, ip ?? "", file) : [];
    const params = url.searchParams;
    if (params.has("mirrorlist")) {
      const entries = mirrorListEntries(path, file, this.chooser.ranked(client), chosen, this.cfg.max_failures);
      const json = params.get("mirrorlist") === "json" || (request.headers.get("accept") ?? "").includes("application/json");
      return json ? mirrorListJson(path, file, entries, { ...client, ip }) : mirrorListPage(path, file, entries, this.cfg.cdn);
    }
    const wantsMetalink = params.has("metalink") || (request.headers.get("accept") ?? "").includes(METALINK_TYPE);
    if (wantsMetalink && file && file.size !== undefined) {
      this.metrics.inc("parrot_redirector_metalinks_total", "Metalink documents served, by client country.", { country });
      this.count("metalink", { path, listed: true, country });
      return metalinkAnswer(path, file, chosen, this.cfg.cdn, this.now());
    }
    if (!chosen.length) {
      const reason = !file ? "not-listed" : "no-mirror-has-it";
      this.metrics.inc("parrot_redirector_cdn_total", "Requests served by the CDN itself, by reason and client country.", { reason, country });
      this.count("cdn", { path, listed: !!file, reason, country });
      return cdnAnswer(path, url.search, file, this.cfg.cdn, reason);
    }
    this.metrics.inc("parrot_redirector_redirects_total", "Clients sent to a mirror, by mirror and client country.", { mirror: chosen[0]!.mirror.config.name, country });
    this.count("mirror", { path, listed: true, mirror: chosen[0]!.mirror.config.name, country });
    return redirectAnswer(path, file!, chosen, this.cfg.cdn);
  }

  /** Counts a request in the day's statistics; the first request of a new day hands the finished one to the host. */
  private count(outcome: Outcome, o: Parameters<DailyStats["record"]>[1]) {
    const finished = this.stats.record(outcome, o);
    if (finished) this.onDay?.(finished);
  }

  /** A path the CDN serves through the redirector (signed indexes): fetched from the CDN, streamed as it comes. */
  private async proxy(request: Request, target: string): Promise<Response> {
    const headers = new Headers({ "accept-encoding": "identity" });
    for (const h of ["range", "if-none-match", "if-modified-since", "if-range", "if-match", "if-unmodified-since", "cache-control"]) {
      const v = request.headers.get(h);
      if (v !== null) headers.set(h, v);
    }
    try {
      const res = await this.fetchImpl(target, { method: request.method, headers, redirect: "manual", signal: AbortSignal.timeout(this.cfg.scan_timeout_ms) });
      const out = new Headers(res.headers);
      for (const h of ["connection", "keep-alive", "transfer-encoding"]) out.delete(h);
      out.set("x-mirror", "cdn");
      return new Response(request.method === "HEAD" ? null : res.body, { status: res.status, statusText: res.statusText, headers: out });
    } catch (err) {
      return new Response(`502 the CDN did not answer: ${(err as Error).message}\n`, { status: 502, headers: { "content-type": "text/plain; charset=utf-8" } });
    }
  }

  /** The redirector's own paths: metrics (token) and the mirrors' status (JSON). */
  private async own(request: Request, url: URL): Promise<Response> {
    if (url.pathname === METRICS_PATH) {
      if (!(await isAuthorized(request, this.config.admin.token))) return unauthorized(!!this.config.admin.token);
      this.collect();
      return new Response(this.metrics.expose(), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } });
    }
    if (url.pathname === MIRRORS_PATH) return new Response(JSON.stringify(this.status(), null, 2) + "\n", { headers: { "content-type": "application/json", "cache-control": "no-store" } });
    return new Response("404 not found\n", { status: 404 });
  }

  /** Every mirror's freshness and health (the status document; the host logs it too). */
  status(): MirrorsStatus & { mirrors: Array<MirrorsStatus["mirrors"][number] & MirrorLocation> } {
    return {
      files: this.catalog.files.filter((f) => f.listed).length,
      origin: { read: this.originReadAt ? new Date(this.originReadAt).toISOString() : undefined, error: this.originError },
      mirrors: this.mirrors.map((m) => ({
        name: m.config.name,
        url: m.config.url,
        ...m.location,
        enabled: m.config.enabled,
        maintenance: m.config.maintenance,
        up: m.usable(this.cfg.max_failures),
        failures: m.failures,
        error: m.lastError,
        synced: m.config.trace ? m.synced : undefined,
        lastScan: m.lastScan ? new Date(m.lastScan).toISOString() : undefined,
        ...m.summary(this.catalog),
      })),
    };
  }

  private collect() {
    for (const m of this.mirrors) {
      const labels = { mirror: m.config.name };
      const s = m.summary(this.catalog);
      this.metrics.set("parrot_redirector_mirror_up", "1 while the mirror gets clients (enabled, not failing).", labels, m.usable(this.cfg.max_failures) ? 1 : 0);
      this.metrics.set("parrot_redirector_mirror_files", "Files of the origin the mirror carries, by what its last check found.", { ...labels, state: "present" }, s.present);
      this.metrics.set("parrot_redirector_mirror_files", "Files of the origin the mirror carries, by what its last check found.", { ...labels, state: "missing" }, s.absent);
      this.metrics.set("parrot_redirector_mirror_files", "Files of the origin the mirror carries, by what its last check found.", { ...labels, state: "wrong" }, s.wrong);
      this.metrics.set("parrot_redirector_mirror_files", "Files of the origin the mirror carries, by what its last check found.", { ...labels, state: "unchecked" }, s.unknown);
    }
    this.metrics.set("parrot_redirector_files", "Files in the origin's lists.", {}, this.catalog.files.filter((f) => f.listed).length);
  }
}
