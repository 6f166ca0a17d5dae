/**
 * What the front door tells its operator: Prometheus metrics (certificates, ACME, limits, the terminator) and one
 * JSON line per event on stdout (a limited or banned request, a ban, a certificate installed or refused, an ACME
 * failure). HAProxy logs only limited and banned requests, as JSON lines; they are parsed here, counted and written
 * out again with the time and this edge's name, like the edge's own access log.
 */
import type { ClientAddresses } from "../privacy/client-addresses.ts";
import { Registry } from "../metrics/registry.ts";
import type { CertInfo } from "./cert-store.ts";
import type { StatRow, TableEntry } from "./haproxy-runtime.ts";

/**
 * A request HAProxy logged: limited (429), banned (connection closed; once per connection), or the first request
 * beyond a connection's request bound (flooding; once per connection).
 */
export interface LimitedRequest {
  client: string;
  host: string;
  path: string;
  status: number;
  action: "limited" | "banned" | "flooding";
  limit?: string;
  /** This request started a ban. */
  ban: boolean;
  /** It came over HTTP/3 (Caddy, HAProxy's h3 frontend). */
  via?: "h3";
}

/** Parses one of HAProxy's JSON log lines (log-format in haproxy-config.ts); undefined for anything else. */
export function parseTerminatorLog(line: string): LimitedRequest | undefined {
  if (!line.startsWith("{")) return undefined;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const action = raw.action;
  if (action !== "limited" && action !== "banned" && action !== "flooding") return undefined;
  const text = (v: unknown) => (typeof v === "string" && v !== "-" ? v : "");
  return {
    client: text(raw.client),
    host: text(raw.host),
    path: text(raw.path),
    status: typeof raw.status === "number" ? raw.status : 0,
    action,
    limit: text(raw.limit) || undefined,
    ban: raw.ban === "1" || raw.ban === true,
    ...(raw.via === "h3" ? { via: "h3" as const } : {}),
  };
}

export class FrontDoorObserver {
  readonly metrics = new Registry();
  private readonly edge: string;
  private readonly write: (line: string) => void;
  /** How events write client addresses ([privacy]); bans and limits keep using full addresses inside HAProxy. */
  private readonly addresses: ClientAddresses;
  private readonly now: () => number;
  /** Last absolute value seen of each HAProxy counter (they restart from 0 when HAProxy reloads). */
  private readonly seen = new Map<string, number>();
  /** Bans already reported: client key → ban start (Unix seconds). */
  private readonly bansSeen = new Map<string, number>();

  constructor(edge: string, addresses: ClientAddresses, write: (line: string) => void = (l) => process.stdout.write(l + "\n"), now = () => Date.now()) {
    this.edge = edge;
    this.addresses = addresses;
    this.write = write;
    this.now = now;
  }

  /** A client address or banned prefix (a stick-table key) as the log may show it. */
  private client(address: string): string {
    return address ? this.addresses.text(address) : "";
  }

  /** Writes one JSON log line. */
  event(event: string, fields: Record<string, unknown> = {}) {
    this.write(JSON.stringify({ time: new Date(this.now()).toISOString(), edge: this.edge, source: "frontdoor", event, ...fields }));
  }

  /** One line of HAProxy's stdout: a limited/banned request is counted and logged; other lines pass as text. */
  terminatorLine(line: string) {
    const req = parseTerminatorLog(line);
    if (!req) {
      if (line.trim()) this.write(`haproxy: ${line.replace(/^\{/, "(")}`);
      return;
    }
    if (req.action === "limited") {
      this.metrics.inc("parrot_frontdoor_limited_requests_total", "Requests answered 429 by a request-rate limit.", { limit: req.limit ?? "" });
    } else if (req.action === "banned") {
      this.metrics.inc("parrot_frontdoor_banned_requests_total", "Connections of a banned client that made a request (closed; counted once each).");
    } else {
      this.metrics.inc("parrot_frontdoor_flooding_connections_total", "Connections beyond their request bound (connection_requests); later requests refused.");
    }
    this.event(req.action, { client: this.client(req.client), host: req.host, path: req.path, status: req.status, limit: req.limit, ban_started: req.ban || undefined, via: req.via });
  }

  /** The certificate now served for a site (or none yet). */
  certificateInstalled(site: string, source: string, info: CertInfo, reason: string) {
    this.metrics.set("parrot_frontdoor_cert_expiry_seconds", "When the certificate served for the site expires (Unix time).", { site }, Math.floor(info.notAfter / 1000));
    this.metrics.inc("parrot_frontdoor_cert_installs_total", "Certificates put into service without a restart.", { site });
    this.event("certificate", { site, from: source, reason, serial: info.serial, not_after: new Date(info.notAfter).toISOString(), names: info.names });
  }

  /** A certificate that was offered and refused (the one in service stays). */
  certificateRefused(site: string, source: string, error: string) {
    this.metrics.inc("parrot_frontdoor_cert_refused_total", "Certificate files refused (unreadable, key mismatch, expired).", { site });
    this.event("certificate-refused", { site, from: source, error });
  }

  /** A box that does not issue could not fetch the issuing box's certificate (the one in service stays). */
  certificateFetchFailed(site: string, from: string, error: string) {
    this.metrics.inc("parrot_frontdoor_cert_fetch_failures_total", "Failed fetches of a certificate from the issuing box.", { site });
    this.event("certificate-fetch-failed", { site, from, error });
  }

  acmeIssued(site: string, reason: string, ms: number) {
    this.metrics.inc("parrot_frontdoor_acme_issued_total", "Certificates issued by the ACME CA.", { site });
    this.event("acme-issued", { site, reason, duration_ms: ms });
  }

  acmeFailed(site: string, reason: string, error: string, retryAt: number) {
    this.metrics.inc("parrot_frontdoor_acme_failures_total", "Failed ACME issuance or renewal attempts (the old certificate stays).", { site });
    this.event("acme-failed", { site, reason, error, retry_at: new Date(retryAt).toISOString() });
  }

  terminatorRestarted(code: string) {
    this.metrics.inc("parrot_frontdoor_terminator_restarts_total", "Times the terminator died and was started again.");
    this.event("terminator-restarted", { exit: code });
  }

  reloaded() {
    this.metrics.inc("parrot_frontdoor_reloads_total", "Terminator reloads (old connections finish on the old process).");
  }

  /** Grows a counter by the change of an absolute value read from HAProxy (a drop means it restarted from 0). */
  private absolute(name: string, help: string, value: number) {
    const last = this.seen.get(name) ?? 0;
    const delta = value >= last ? value - last : value;
    this.seen.set(name, value);
    this.metrics.inc(name, help, {}, delta);
  }

  /** HAProxy's frontend counters (`show stat`). */
  terminatorStats(rows: StatRow[] | undefined) {
    this.metrics.set("parrot_frontdoor_up", "Whether the terminator answered its runtime API at the last scrape.", {}, rows ? 1 : 0);
    const fe = rows?.find((r) => r.pxname === "public" && r.svname === "FRONTEND");
    if (!fe) return;
    const n = (k: string) => Number(fe[k] ?? 0) || 0;
    this.metrics.set("parrot_frontdoor_connections", "Client connections open now.", {}, n("scur"));
    this.absolute("parrot_frontdoor_connections_total", "Client connections accepted.", n("stot"));
    this.absolute("parrot_frontdoor_requests_total", "HTTP requests received.", n("req_tot"));
    this.absolute("parrot_frontdoor_rejected_connections_total", "Connections closed at once: banned clients, too many concurrent connections.", n("dcon") + n("dses"));
    this.absolute("parrot_frontdoor_denied_requests_total", "Requests refused by a limit or a ban.", n("dreq"));
  }

  /** The strike/ban table: bans in force now, and a log line for each ban not seen before. */
  bans(entries: TableEntry[] | undefined, banSeconds: number) {
    if (!entries) return;
    const nowS = Math.floor(this.now() / 1000);
    let active = 0;
    for (const e of entries) {
      const started = e.data.gpt0 ?? 0;
      if (!started || nowS - started >= banSeconds) continue;
      active++;
      if (this.bansSeen.get(e.key) === started) continue;
      this.bansSeen.set(e.key, started);
      this.metrics.inc("parrot_frontdoor_bans_total", "Clients banned after repeated limit hits.");
      this.event("ban", { client: this.client(e.key), strikes: e.data.gpc0, until: new Date((started + banSeconds) * 1000).toISOString() });
    }
    for (const [key, started] of this.bansSeen) if (nowS - started >= banSeconds) this.bansSeen.delete(key);
    this.metrics.set("parrot_frontdoor_banned_clients", "Clients (addresses or prefixes) banned now.", {}, active);
  }
}
