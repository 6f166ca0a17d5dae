/**
 * The front door of an edge box: HAProxy terminating TLS (every site's certificate by SNI, HTTP/2 and HTTP/1.1) and
 * plain HTTP on the public ports, applying per-client limits, and passing requests to the edge's workerd over
 * loopback with the client's address in X-Forwarded-For (which the edge believes only from loopback). Started and
 * supervised by the edge box command (`startFrontDoor`), its config generated from cdn.toml at every start.
 *
 *   cdn.toml → plan.ts → certificates (certificates.ts: files, local CA, ACME) → haproxy-config.ts → terminator.ts
 *   metrics, logs: observe.ts; operator endpoints: admin.ts; ACME: acme-issuer.ts + dns-challenge.ts
 */
import { ClientAddresses } from "../privacy/client-addresses.ts";
import { hostPrivacyKey } from "../node/privacy-key.ts";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { createServer, type AddressInfo, type Server } from "node:net";
import { get as httpGet } from "node:http";
import { get as httpsGet } from "node:https";
import { tmpdir } from "node:os";
import { rootCertificates } from "node:tls";
import { join, resolve } from "node:path";
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";
import { ConfigError, type CdnConfig } from "../config/config.ts";
import { AcmeIssuer } from "./acme-issuer.ts";
import { frontDoorAdmin, serveAdmin } from "./admin.ts";
import { CertDirectory, inspectPair } from "./cert-store.ts";
import { CertificateManager } from "./certificates.ts";
import { ChallengePublisher } from "./dns-challenge.ts";
import { crtList, haproxyConfig } from "./haproxy-config.ts";
import { parseStat, parseTable, runtimeCommand } from "./haproxy-runtime.ts";
import { ensureLocalCa, issueLocalCertificate } from "./local-ca.ts";
import { FrontDoorObserver } from "./observe.ts";
import { planFrontDoor, type FrontDoorPlan } from "./plan.ts";
import { freePort, startQuicDoor, type QuicDoor } from "./quic.ts";
import { startTerminator, type Terminator } from "./terminator.ts";
import { installed } from "../node/engines.ts";

export { hasFrontDoor } from "./plan.ts";

/** The header carrying the client's scheme to the edge (workerd's socket option `forwardedProtoHeader`). */
export const FORWARDED_PROTO_HEADER = "X-Forwarded-Proto";
/** Where the terminator's connections to the edge come from: the edge believes X-Forwarded-For only from here. */
export const FRONTDOOR_PEERS = ["127.0.0.1/32"];

export interface FrontDoorOptions {
  config: CdnConfig;
  /** Public address of both listeners. */
  host: string;
  /** Override [frontdoor] http_port / https_port; 0 = a free port. */
  httpPort?: number;
  httpsPort?: number;
  /** The edge's workerd listener on loopback, "127.0.0.1:port". */
  upstream: string;
  /** For the terminator's files, sockets and certificate copies (made 0700). */
  runDir: string;
  /** Output lines (JSON events and HAProxy's notices); default stdout. */
  log?: (line: string) => void;
  haproxyBinary?: string;
  caddyBinary?: string;
}

export interface RunningFrontDoor {
  httpUrl: string;
  httpsUrl: string;
  httpPort: number;
  httpsPort: number;
  /** HTTP/3 through Caddy, when on: its UDP port, and the one Alt-Svc names. */
  http3?: { port: number; advertisedPort: number };
  plan: FrontDoorPlan;
  terminator: Terminator;
  certificates: CertificateManager;
  observer: FrontDoorObserver;
  /** The metrics text (fresh terminator counters and bans). */
  metrics(): Promise<string>;
  /** Checks a new config's sites and front door tables (throws ConfigError naming the field); nothing changes. */
  check(config: CdnConfig): FrontDoorPlan;
  /**
   * Applies a new config's `[[sites]]` live (added, removed, other names, limits, HSTS…): new sites get their
   * certificate file, HAProxy's config and crt-list are rewritten and its master reloads them (a new worker on the
   * same sockets; the old one finishes its connections for up to drain_seconds). Resolves once the new worker
   * serves; rejects with HAProxy's reason (the old worker keeps serving). Whether anything changed.
   */
  reconfigure(config: CdnConfig): Promise<boolean>;
  stop(): Promise<void>;
}

/**
 * The edge's cdn.toml text as its workerd should see it behind the front door: the terminator's loopback address
 * added to `[edge] trusted_proxies`, so X-Forwarded-For is believed from it and from no one else.
 */
export function behindFrontDoor(configText: string, upstreamHost = "127.0.0.1"): string {
  const raw = parseToml(configText) as { edge?: { trusted_proxies?: string[] } };
  raw.edge ??= {};
  // Connections to any 127.x address come from 127.0.0.1 (the loopback route's source); the address itself too.
  raw.edge.trusted_proxies = [...new Set([...(raw.edge.trusted_proxies ?? []), ...FRONTDOOR_PEERS, `${upstreamHost}/32`])];
  return stringifyToml(raw);
}

/**
 * The edge's workerd options behind the front door: loopback only ([frontdoor] upstream_host), a free port, the
 * scheme from X-Forwarded-Proto, and the terminator's X-Forwarded-For believed (see behindFrontDoor).
 */
export function workerdBehindFrontDoor(configText: string, upstreamHost = "127.0.0.1") {
  return { configText: behindFrontDoor(configText, upstreamHost), host: upstreamHost, port: 0, forwardedProtoHeader: FORWARDED_PROTO_HEADER };
}

/** The site npm start serves over HTTPS when the config names none: www.<zone>, with a certificate from a local CA. */
export function demoSite(zone: string): Record<string, unknown> {
  return {
    names: [`www.${zone}`],
    certificate: "local",
    http_paths: ["/dists/"], // apt stays on plain HTTP; the rest of http:// is redirected
    limits: [{ requests: 200, seconds: 10 }],
  };
}

/**
 * Makes the local CA and every `certificate = "local"` site's certificate in the config's cert_dir, once, before
 * several edges share that directory (npm start). Returns the CA certificate's path, for `curl --cacert`.
 */
export async function ensureLocalCertificates(config: CdnConfig): Promise<string> {
  const plan = planFrontDoor(config);
  const dir = new CertDirectory(resolve(plan.door.cert_dir));
  const ca = await ensureLocalCa(dir.dir);
  for (const site of plan.sites.filter((s) => s.certificate === "local")) {
    let usable = false;
    try {
      const pair = dir.read(site.id);
      usable = pair !== undefined && inspectPair(pair).notAfter > Date.now() + 7 * 86_400_000;
    } catch {
      usable = false;
    }
    if (!usable) dir.write(site.id, await issueLocalCertificate(ca, site.names));
  }
  return ca.certPath;
}

/** GETs from the issuing box with the fleet's admin token (its TLS trusted by the system CAs and [acme] ca_bundle). */
function issuingBoxClient(base: string, token: string, caBundle?: string): (url: string) => Promise<string> {
  const ca = caBundle ? [...rootCertificates, readFileSync(resolve(caBundle), "utf8")] : undefined;
  return (url) =>
    new Promise((ok, fail) => {
      const get = url.startsWith("https:") ? httpsGet : httpGet;
      const req = get(url, { headers: { authorization: `Bearer ${token}` }, ca, timeout: 30_000 }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
          if (body.length > 1 << 20) req.destroy(new Error("answer larger than 1 MB"));
        });
        res.on("end", () => (res.statusCode === 200 ? ok(body) : fail(new Error(`${base} answered ${res.statusCode}: ${body.trim().slice(0, 200)}`))));
      });
      req.on("timeout", () => req.destroy(new Error("no answer within 30 s")));
      req.on("error", fail);
    });
}

function listen(host: string, port: number): Promise<Server> {
  return new Promise((ok, fail) => {
    const server = createServer({ pauseOnConnect: true });
    server.once("error", (err) =>
      fail(new Error(`front door cannot listen on ${host}:${port}: ${(err as Error).message}${port < 1024 ? " (ports below 1024 need CAP_NET_BIND_SERVICE; the systemd unit grants it)" : ""}`)),
    );
    server.listen({ host, port, backlog: 1024 }, () => ok(server));
  });
}

/** Starts the front door; resolves once HAProxy serves every site. */
export async function startFrontDoor(opts: FrontDoorOptions): Promise<RunningFrontDoor> {
  const plan = planFrontDoor(opts.config);
  const door = plan.door;
  const log = opts.log ?? ((line: string) => process.stdout.write(line + "\n"));
  const observer = new FrontDoorObserver(opts.config.edge?.name ?? "edge", new ClientAddresses(opts.config.privacy, hostPrivacyKey()), log);

  mkdirSync(opts.runDir, { recursive: true, mode: 0o700 });
  chmodSync(opts.runDir, 0o700);
  const runCertDir = join(opts.runDir, "certs");
  mkdirSync(runCertDir, { recursive: true, mode: 0o700 });
  // Unix socket paths hold at most 107 bytes: a deep run directory gets its sockets in a private temporary one.
  const sockDir = join(opts.runDir, "admin.sock").length > 100 ? mkdtempSync(join(tmpdir(), "parrot-fd-")) : opts.runDir;
  const runtimeSocket = join(sockDir, "haproxy.sock");
  const adminSocket = join(sockDir, "admin.sock");

  const caddyBinary = opts.caddyBinary ?? "caddy";
  const http3 = door.http3 !== false && installed(caddyBinary);
  if (door.http3 === true && !http3) throw new ConfigError("cdn.toml", [`frontdoor.http3: true needs Caddy (${caddyBinary} is not installed: apt-get install caddy)`]);
  if (door.http3 === undefined && !http3) log("front door: HTTP/3 off: apt-get install caddy for HTTP/3 (QUIC) beside HAProxy");
  let quic: QuicDoor | undefined;

  const certDir = new CertDirectory(resolve(door.cert_dir));
  let issuer: AcmeIssuer | undefined;
  /** The ACME issuer a plan needs on this box (kept across live changes: one account, one queue). */
  const issuerFor = (p: FrontDoorPlan): AcmeIssuer | undefined => {
    if (!p.acme?.issue || !p.sites.some((s) => s.certificate === "acme")) return undefined;
    if (issuer) return issuer;
    const publisher = new ChallengePublisher({ nodes: p.acme.dns_nodes, token: p.acme.token });
    const caBundlePem = p.acme.ca_bundle ? readFileSync(resolve(p.acme.ca_bundle), "utf8") : undefined;
    issuer = new AcmeIssuer({ acme: p.acme, stateDir: certDir.dir, publisher, caBundlePem, log: (e) => observer.event(String(e.event), e) });
    return issuer;
  };
  issuerFor(plan);
  const fetchText = plan.acme?.fetch_from ? issuingBoxClient(plan.acme.fetch_from, opts.config.admin.token!, plan.acme.ca_bundle) : undefined;
  // A certificate swapped in HAProxy (renewal, the fleet's copy) is loaded by Caddy too; swaps come one site at a time.
  let caddyReload: Promise<void> = Promise.resolve();
  const onReplaced = () => {
    caddyReload = caddyReload.then(() => quic?.reload(running, certificates.crtEntries())).catch((err: Error) => log(`front door: HTTP/3 kept its old certificates: ${err.message}`));
  };
  const certificates = new CertificateManager({ plan, certDir, runCertDir, observer, issuer, fetchText, onReplaced });
  const entries = await certificates.prepare();
  const crtListPath = join(opts.runDir, "sites.crtlist");
  writeFileSync(crtListPath, crtList(entries), { mode: 0o600 });

  const httpListener = await listen(opts.host, opts.httpPort ?? door.http_port);
  const httpsListener = await listen(opts.host, opts.httpsPort ?? door.https_port).catch((err) => {
    httpListener.close();
    throw err;
  });
  const listeners = [httpListener, httpsListener];
  const [httpPort, httpsPort] = listeners.map((l) => (l.address() as AddressInfo).port) as [number, number];
  // HTTP/3 first: Caddy dials HAProxy's h3 socket only when a request comes, and whether it runs decides HAProxy's
  // config (the h3 frontend, Alt-Svc). Unset `http3` is best effort: Caddy missing or failing costs one line.
  const h3Socket = join(sockDir, "h3.sock");
  let h3: { socket: string; port: number; advertisedPort: number } | undefined;
  if (http3) {
    // Unset: 8443, or a free port when HTTPS asked for one (tests).
    const port = door.http3_port ?? ((opts.httpsPort ?? door.https_port) === 0 ? 0 : 8443);
    try {
      if (port !== 0 && port === httpsPort) {
        throw new ConfigError("cdn.toml", [`frontdoor.http3_port: ${port} is the HTTPS port; Caddy binds TCP on its port as well as UDP, so HTTP/3 needs another one`]);
      }
      const h3Port = port === 0 ? await freePort(opts.host) : port;
      quic = await startQuicDoor({ binary: caddyBinary, runDir: opts.runDir, sockDir, host: opts.host, port: h3Port, upstreamSocket: h3Socket, plan, certificates: entries, log });
      h3 = { socket: h3Socket, port: h3Port, advertisedPort: door.http3_advertised_port ?? h3Port };
    } catch (err) {
      if (door.http3 === true) {
        for (const l of listeners) l.close();
        throw err;
      }
      log(`front door: HTTP/3 off: ${(err as Error).message.split("\n")[0]}`);
    }
  }

  const metrics = async () => {
    const stat = await runtimeCommand(runtimeSocket, "show stat", 3_000).then(parseStat, () => undefined);
    observer.terminatorStats(stat);
    if (door.ban) observer.bans(await runtimeCommand(runtimeSocket, "show table st_strike", 3_000).then(parseTable, () => undefined), door.ban.seconds);
    return observer.metrics.expose();
  };
  const admin = await serveAdmin(
    adminSocket,
    frontDoorAdmin({
      admin: opts.config.admin,
      metrics,
      certificates: () => certificates.status(),
      renew: (site) => certificates.renew(site),
      // A fleet with an issuer hands keys only sealed, through the control plane (src/control/fleet-certs.ts).
      certificatePem: (site) => (plan.acme?.issuer ? undefined : certificates.servedPem(site)),
    }),
  );

  const configPath = join(opts.runDir, "haproxy.cfg");
  const originTimeout = opts.config.edge?.origin_timeout_ms ?? 30_000;
  const configText = (p: FrontDoorPlan) =>
    haproxyConfig({
      plan: p,
      httpBind: "fd@3",
      httpsBind: "fd@4",
      httpsPort,
      upstream: opts.upstream,
      adminSocket,
      runtimeSocket,
      crtList: crtListPath,
      serverTimeoutMs: Math.max(60_000, originTimeout + 10_000),
      h3,
    });
  writeFileSync(configPath, configText(plan), { mode: 0o600 });
  let terminator: Terminator;
  try {
    terminator = await startTerminator({
      configPath,
      runDir: opts.runDir,
      runtimeSocket,
      listeners,
      binary: opts.haproxyBinary,
      onStdout: (line) => observer.terminatorLine(line),
      onStderr: (line) => log(`haproxy: ${line.replace(/^\{/, "(")}`),
      onRestart: (code) => observer.terminatorRestarted(code),
    });
  } catch (err) {
    await quic?.stop();
    for (const l of listeners) l.close();
    admin.close();
    throw err;
  }
  let running = plan;
  certificates.attach(runtimeSocket, door.poll_seconds * 1000);
  // Bans are logged as they start: the strike table is read every poll round (and at every scrape).
  const banTimer = door.ban
    ? setInterval(() => {
        void runtimeCommand(runtimeSocket, "show table st_strike", 3_000).then(
          (t) => observer.bans(parseTable(t), door.ban!.seconds),
          () => undefined,
        );
      }, Math.min(door.poll_seconds, 5) * 1000)
    : undefined;
  banTimer?.unref();

  const hostPart = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  /** The [frontdoor] and [acme] tables are read at start: a live change takes [[sites]] only. */
  const check = (config: CdnConfig) => {
    const next = planFrontDoor({ ...config, frontdoor: opts.config.frontdoor, acme: opts.config.acme });
    if (!next.sites.length) throw new ConfigError("cdn.toml", ["sites: a running front door keeps at least one site (removing the last one needs a restart)"]);
    return next;
  };
  let reconfiguring = Promise.resolve(false);
  const reconfigure = (config: CdnConfig): Promise<boolean> => {
    const next = check(config);
    const step = async () => {
      const text = configText(next);
      const entries = await certificates.setPlan(next, issuerFor(next));
      const list = crtList(entries);
      if (text === readFileSync(configPath, "utf8") && list === readFileSync(crtListPath, "utf8")) return false;
      writeFileSync(crtListPath, list, { mode: 0o600 });
      writeFileSync(configPath, text, { mode: 0o600 });
      await terminator.reload();
      certificates.markLoaded();
      await quic?.reload(next, entries);
      running = next;
      observer.event("sites", { sites: next.sites.map((s) => s.id), reason: "reconfigured" });
      return true;
    };
    reconfiguring = reconfiguring.then(step, step);
    return reconfiguring;
  };
  return {
    httpUrl: `http://${hostPart}:${httpPort}`,
    httpsUrl: `https://${hostPart}:${httpsPort}`,
    httpPort,
    httpsPort,
    ...(h3 ? { http3: { port: h3.port, advertisedPort: h3.advertisedPort } } : {}),
    get plan() {
      return running;
    },
    terminator,
    certificates,
    observer,
    metrics,
    check,
    reconfigure,
    async stop() {
      certificates.stop();
      if (banTimer) clearInterval(banTimer);
      await quic?.stop();
      await terminator.stop();
      await new Promise<void>((r) => admin.close(() => r()));
    },
  };
}
