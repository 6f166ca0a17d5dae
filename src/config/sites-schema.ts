/**
 * Schema of the front door's part of cdn.toml: the `[[sites]]` an edge box serves over HTTPS (names, where their
 * certificate comes from, plain-HTTP policy, HSTS, per-path request limits), `[frontdoor]` (ports, the certificate
 * directory, per-client connection limits, bans, the allow list) and `[acme]` (the CA and the DNS nodes that answer
 * DNS-01 challenges). Checks that need several tables at once (a site name outside the CDN zone without an alias, a
 * name served twice) are in `src/frontdoor/plan.ts`, which reports them the same way.
 */
import { z } from "zod";
import { parseCidr } from "../net/ip.ts";

const seconds = z.number().int().min(0).max(2 ** 31);
const port = z.number().int().min(0).max(65535);
/** A DNS name a certificate can carry: letters, digits, '-', dots; a leading `*.` for a wildcard. */
const siteName = z
  .string()
  .max(253)
  .regex(/^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/, "a DNS name such as www.example.org (or *.example.org)")
  .transform((s) => s.toLowerCase());
const domain = z
  .string()
  .max(253)
  .regex(/^([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$/, "a DNS name such as acme.geo.example.org")
  .transform((s) => s.toLowerCase().replace(/\.$/, ""));
const cidrs = z.array(z.string().refine((c) => parseCidr(c) !== null, "not an IP address or CIDR")).default([]);
/** Path prefixes: they start with "/" and hold no spaces or characters HAProxy would read as syntax. */
const pathPrefix = z.string().regex(/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/, 'a path prefix such as "/dists/"');
/** How client addresses group for a limit: each address alone, or the whole prefix ([frontdoor] prefix4 / prefix6). */
const limitKey = z.enum(["address", "prefix"]).default("address");

/** One request-rate limit of a site (nginx limit_req): at most `requests` per `seconds` per client, else 429. */
export const SiteLimitSchema = z
  .object({
    /** Name in metrics and logs; `<site>:<index>` when absent. */
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, "letters, digits, '.', '_' and '-' only").optional(),
    /** Path prefixes the limit covers (default: every path). */
    paths: z.array(pathPrefix).min(1).default(["/"]),
    /** Requests allowed per client within the window… */
    requests: z.number().int().min(1).max(1_000_000),
    /** …of this many seconds (a sliding window). */
    seconds: z.number().int().min(1).max(3600).default(1),
    key: limitKey,
  })
  .strict();

/** Strict-Transport-Security on the site's HTTPS answers. */
export const HstsSchema = z
  .object({
    max_age: seconds,
    include_subdomains: z.boolean().default(false),
    preload: z.boolean().default(false),
  })
  .strict()
  .refine((h) => !h.preload || (h.include_subdomains && h.max_age >= 31_536_000), {
    message: "preload needs include_subdomains = true and max_age >= 31536000 (the preload list's rules)",
    path: ["preload"],
  });

export const SiteSchema = z
  .object({
    /** The names the site answers to; its certificate covers all of them. */
    names: z.array(siteName).min(1).max(100),
    /** File names and metrics label; the first name by default (`*` becomes `_wildcard`). */
    id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, "lower-case letters, digits, '.', '_' and '-'").optional(),
    /**
     * Where the certificate comes from: "acme" (issued and renewed by DNS-01, see [acme]), "files" (cert_file and
     * key_file, reloaded when they change), "local" (a CA made on this box, for trying things out: npm start).
     */
    certificate: z.enum(["acme", "files", "local"]).default("acme"),
    /** certificate = "files": the PEM chain and key (relative to the working directory). */
    cert_file: z.string().min(1).optional(),
    key_file: z.string().min(1).optional(),
    /**
     * certificate = "acme", names outside the CDN zone: the operator points `_acme-challenge.<name>` by CNAME at
     * `_acme-challenge.<challenge_alias>`, a name inside the zone where the issuer publishes the TXT records.
     */
    challenge_alias: domain.optional(),
    /** Plain HTTP: "redirect" to HTTPS (except `http_paths`), or "serve" it as it is. */
    http: z.enum(["redirect", "serve"]).default("redirect"),
    /** Path prefixes served over plain HTTP even when http = "redirect" (apt over http: "/dists/", "/pool/"). */
    http_paths: z.array(pathPrefix).default([]),
    hsts: HstsSchema.optional(),
    /** Request-rate limits: the first whose paths match a request applies. */
    limits: z.array(SiteLimitSchema).default([]),
  })
  .strict()
  .refine((s) => s.certificate !== "files" || (s.cert_file && s.key_file), {
    message: 'certificate = "files" needs cert_file and key_file',
    path: ["cert_file"],
  })
  .refine((s) => s.certificate === "files" || (!s.cert_file && !s.key_file), {
    message: 'cert_file and key_file belong to certificate = "files"',
    path: ["cert_file"],
  })
  .refine((s) => s.certificate === "acme" || !s.challenge_alias, {
    message: 'challenge_alias belongs to certificate = "acme"',
    path: ["challenge_alias"],
  });

/** fail2ban's habit: this many limit hits (429s or refused connections) within `within` seconds ban for `seconds`. */
export const BanSchema = z
  .object({
    after: z.number().int().min(1).max(1_000_000),
    within: z.number().int().min(1).max(86_400).default(60),
    seconds: z.number().int().min(1).max(7 * 86_400).default(600),
    key: limitKey,
  })
  .strict();

export const FrontDoorSchema = z
  .object({
    /** Public ports on the edge's --host; `npm run edge -- --port / --https-port` override them. */
    http_port: port.default(80),
    https_port: port.default(443),
    /**
     * Where the box's workerd listens behind the front door (a free port): an IPv4 loopback address, since workerd
     * believes the X-Forwarded-For of connections from loopback.
     */
    upstream_host: z
      .string()
      .default("127.0.0.1")
      .refine((h) => /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) && h.split(".").every((o) => Number(o) <= 255), "must be an IPv4 loopback address (127.0.0.0/8): workerd behind the front door is reached over loopback only"),
    /**
     * Certificates, one `<site>.crt` + `<site>.key` pair per site: written by the ACME issuer, read by every front door
     * (poll_seconds apart). Several boxes may share it or receive copies (see docs/frontdoor.md: one issuer per fleet).
     */
    cert_dir: z.string().min(1).default(".parrot/certs"),
    poll_seconds: z.number().int().min(1).max(3600).default(10),
    /** Addresses and networks never limited or banned (monitoring, your own offices). */
    allow: cidrs,
    /** What "prefix" means in limits and bans: an IPv4 /prefix4 or an IPv6 /prefix6. */
    prefix4: z.number().int().min(8).max(32).default(24),
    prefix6: z.number().int().min(16).max(128).default(56),
    /**
     * Concurrent connections per client (nginx limit_conn); more are closed at once, before TLS. 0 = no limit. The
     * default leaves room for a few dozen browsers behind one NAT address and stops one address from holding maxconn.
     */
    connections: z.number().int().min(0).max(1_000_000).default(256),
    connections_key: limitKey,
    ban: BanSchema.optional(),
    /** All connections the terminator holds at once (HAProxy maxconn). */
    max_connections: z.number().int().min(1).max(10_000_000).default(20_000),
    /** After a reload, old connections keep being served this long at most (a long download continues). */
    drain_seconds: seconds.default(3600),
    /** Idle time allowed on a client connection between requests; request_timeout_ms for its request headers (slowloris). */
    client_timeout_ms: z.number().int().min(1000).max(3_600_000).default(60_000),
    request_timeout_ms: z.number().int().min(100).max(600_000).default(10_000),
    /**
     * How long a client may take for its TLS handshake (nothing sent, a cut ClientHello). HAProxy 2.6 has one timer
     * for this and for a client that stops reading its response or sending its body mid-transfer (`timeout client`).
     */
    handshake_timeout_ms: z.number().int().min(1000).max(600_000).default(5_000),
    /**
     * Requests one connection may make within connection_seconds, whatever the site's limits and the allow list
     * (an HTTP/2 stream the client resets counts once HAProxy analysed it; one reset before never reaches the edge):
     * more are refused before they reach the edge, and the connection is closed (GOAWAY) at its next request the
     * client did not reset itself. 0 = no bound.
     */
    connection_requests: z.number().int().min(0).max(10_000_000).default(2_000),
    connection_seconds: z.number().int().min(1).max(3600).default(10),
    /**
     * HTTP/3 (QUIC) through Caddy beside HAProxy: unset = on when `caddy` is installed (one line says so when it is
     * not), true = required (the start fails without it), false = off. Caddy passes each request to HAProxy, so the
     * sites' limits and bans hold for it too.
     */
    http3: z.boolean().optional(),
    /**
     * Caddy's port, UDP for QUIC (and TCP too: Debian's Caddy 2.6 always binds both, so it cannot share HAProxy's
     * https_port; its TCP side serves HTTPS through the same door). 0 = a free port at start. Unset: 8443, or a free
     * port when the HTTPS port is 0.
     */
    http3_port: port.optional(),
    /** The port `Alt-Svc: h3=":<port>"` names to browsers: http3_port, or 443 when UDP 443 is redirected to it. */
    http3_advertised_port: port.min(1).optional(),
    /** Fetch OCSP responses and staple them, for certificates that name an OCSP responder. */
    ocsp: z.boolean().default(true),
  })
  .strict();

/** A DNS node that serves the CDN zone: its HTTP listener (for the challenge calls) and its DNS address. */
export const AcmeDnsNodeSchema = z
  .object({
    /** Base URL of the node's HTTP listener: `POST|DELETE <url>/admin/acme-challenge`. */
    url: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }),
    /** `address:port` to ask for the TXT record until it is there (IPv6 in brackets). */
    dns: z.string().regex(/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/, 'an address and port such as "192.0.2.53:53"'),
  })
  .strict();

export const AcmeSchema = z
  .object({
    /** The CA's ACME directory (Let's Encrypt's by default; its staging directory while testing). */
    directory: z.url({ protocol: /^https?$/ }).default("https://acme-v02.api.letsencrypt.org/directory"),
    /** Contact for the CA (expiry notices). */
    email: z.email().optional(),
    /** Extra CA certificates (PEM) to trust for the directory: a private CA, or pebble in tests. */
    ca_bundle: z.string().min(1).optional(),
    /** The zone the DNS nodes serve; [dns] zone when absent. */
    zone: domain.optional(),
    /** Every DNS node of the zone: the TXT goes to each, and each must answer it before the CA is asked. */
    dns_nodes: z.array(AcmeDnsNodeSchema).min(1),
    /** The DNS nodes' admin token; [admin] token when absent. */
    token: z.string().min(16, "use at least 16 characters").optional(),
    /** Whether this box issues and renews. Exactly one box per fleet should; the others read cert_dir. */
    issue: z.boolean().default(true),
    /**
     * The name of the box that issues (`[edge] name`), for a fleet sharing one cdn.toml (`[control]` needed): that
     * box issues and publishes each certificate through the control plane, its key sealed to every box's own key;
     * the others install what it publishes. Set, it replaces `issue`.
     */
    issuer: z.string().regex(/^[A-Za-z0-9._-]+$/, "a box name ([edge] name)").max(200).optional(),
    /**
     * issue = false: the issuing box's front door (its https:// URL, or http:// on a private network), from which
     * this box fetches the certificates (GET /.well-known/cdn/frontdoor/certificate/<site>, [admin] token) every
     * fetch_seconds. Without it, cert_dir must be filled by other means (a shared directory, a copy job, the control plane).
     */
    fetch_from: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }).optional(),
    fetch_seconds: z.number().int().min(10).max(86_400).default(300),
    /** Renew when this fraction of the certificate's lifetime has passed (2/3: 30 days before a 90-day expiry). */
    renew_at: z.number().min(0.1).max(0.95).default(2 / 3),
    /** The certificate key. */
    key_type: z.enum(["ecdsa-p256", "ecdsa-p384", "rsa-2048"]).default("ecdsa-p256"),
    /** How long each DNS node may take to answer a published TXT. */
    propagation_timeout_seconds: z.number().int().min(1).max(3600).default(120),
    /** After a failed attempt, wait this long, doubling up to retry_max_seconds (the CA's rate limits). */
    retry_min_seconds: z.number().int().min(1).max(86_400).default(300),
    retry_max_seconds: z.number().int().min(1).max(7 * 86_400).default(6 * 3600),
  })
  .strict()
  .refine((a) => a.retry_min_seconds <= a.retry_max_seconds, {
    message: "retry_min_seconds must not exceed retry_max_seconds",
    path: ["retry_min_seconds"],
  })
  .refine((a) => !(a.issuer && a.fetch_from), {
    message: "a fleet with an issuer ([acme] issuer) takes certificates from the control plane: remove fetch_from",
    path: ["fetch_from"],
  })
  .refine((a) => !(a.issue && a.fetch_from), {
    message: "a box that issues (issue = true) does not fetch: set issue = false on the boxes that fetch",
    path: ["fetch_from"],
  });

/** The tables this part adds to cdn.toml (spread into the top-level schema). */
export const FrontDoorTables = {
  sites: z.array(SiteSchema).default([]),
  frontdoor: FrontDoorSchema.prefault({}),
  acme: AcmeSchema.optional(),
};

export type SiteConfig = z.infer<typeof SiteSchema>;
export type SiteLimit = z.infer<typeof SiteLimitSchema>;
export type FrontDoorConfig = z.infer<typeof FrontDoorSchema>;
export type AcmeConfig = z.infer<typeof AcmeSchema>;
export type BanConfig = z.infer<typeof BanSchema>;
