/**
 * Schema of the GeoDNS part of cdn.toml: `[dns]`, `[dns.director]`, `[geoip]` and the `[[edges]]` list.
 * Paths stay as written: the Node host resolves them from the config file's folder.
 */
import { z } from "zod";
import { CidrListSchema } from "./cidr.ts";
import { ContinentSchema, CountrySchema } from "./places.ts";

const label = z.string().regex(/^[A-Za-z0-9_*-][A-Za-z0-9_.-]*$|^@$/, "a DNS name relative to the zone, or @");
const hostname = z
  .string()
  .regex(/^([A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?$/, "a host name such as ns1.example.org");
const ttl = z.number().int().min(0).max(2 ** 31 - 1);

const DEFAULT_TXT = "ip %ip %af city %ci country %cc %co state %cn region %re name %na as %as";

export const DnsRecordSchema = z
  .object({
    name: label,
    type: z.enum(["A", "AAAA", "CNAME", "TXT", "MX", "NS", "CAA", "SRV"]),
    /** CNAME/NS/MX/SRV targets without a trailing dot are relative to the zone. */
    value: z.string().min(1),
    ttl: ttl.optional(),
  })
  .strict();

export const DirectorSchema = z
  .object({
    /** The tailored name, relative to the zone (director → director.<zone>). */
    name: label.default("director"),
    /** Addresses per family in one answer. */
    answers: z.number().int().min(1).max(16).default(2),
    /** The debug TXT at the director name: PowerDNS GeoIP placeholders (%ip %af %ci %cc %co %cn %re %na %as …). */
    txt: z.string().default(DEFAULT_TXT),
    /** TTL of the director's records; [dns] ttl when absent. */
    ttl: ttl.optional(),
    /** Edge names answered when the client's location, country and continent match nothing. */
    default: z.array(z.string().min(1)).default([]),
    /** Edges within this fraction of the nearest edge's distance count as equally near: weights spread load. */
    tie_margin: z.number().min(0).max(10).default(0.05),
    /**
     * Addresses (anycast) answered for a family when fewer than [dns.health] min_up of its edges are in service,
     * instead of failing open to every edge; a family without fallback addresses still fails open.
     */
    fallback: z
      .object({ ipv4: z.array(z.ipv4()).max(16).default([]), ipv6: z.array(z.ipv6()).max(16).default([]) })
      .strict()
      .optional(),
  })
  .strict();

/** `[dns.health]`: how this DNS node probes the edges (gdnsd-style hysteresis). */
export const HealthSchema = z
  .object({
    /** Time between probe rounds; each edge with a `url` gets GET <url>/.well-known/cdn/health once per round. */
    interval_ms: z.number().int().min(50).max(3_600_000).default(10_000),
    /** A probe without an answer (status and body) within this counts as failed. At most interval_ms. */
    timeout_ms: z.number().int().min(10).max(600_000).default(3_000),
    /** Failed probes in a row before an up edge goes down (leaves answers). */
    down_after: z.number().int().min(1).max(1000).default(3),
    /** Good probes in a row before a down edge comes back. */
    up_after: z.number().int().min(1).max(1000).default(3),
    /** Fewer edges in service than this (per address family): answer with all of them (fail-open). */
    min_up: z.number().int().min(1).max(1000).default(1),
  })
  .strict()
  .refine((h) => h.timeout_ms <= h.interval_ms, { message: "timeout_ms must not exceed interval_ms", path: ["timeout_ms"] });

/** `[dns.limits]`: what each stream listener (TCP, DoT, DoH over HTTP and over TLS) holds against hostile clients. */
export const LimitsSchema = z
  .object({
    /** Connections at once per listener; a new one always gets in: the oldest idle connection (else the oldest) goes. */
    connections: z.number().int().min(1).max(100_000).default(512),
    /** Connections at once per client address (IPv6: per /64), on each listener. */
    connections_per_client: z.number().int().min(1).max(100_000).default(32),
    /** A whole TCP/DoT message or HTTP request must arrive within this from its first byte (trickling does not extend it). */
    message_ms: z.number().int().min(50).max(600_000).default(5_000),
    /** A connection with nothing in progress closes after this. */
    idle_ms: z.number().int().min(50).max(3_600_000).default(10_000),
    /** TLS handshakes (DoT, DoH over TLS) must finish within this. */
    tls_handshake_ms: z.number().int().min(50).max(600_000).default(5_000),
  })
  .strict();

/** `[dns.rrl]`: response rate limiting on UDP (Knot/NSD/BIND style). */
export const RrlSchema = z
  .object({
    /** Responses per second per client network (0: off). A node with --workers n gives each process rate / n. */
    rate: z.number().int().min(0).max(1_000_000).default(50),
    /** Responses a network may get at once after a quiet spell; `rate` when absent. */
    burst: z.number().int().min(1).max(10_000_000).optional(),
    /** Every slip-th limited response goes out empty with TC=1 so real resolvers retry over TCP (0: never, 1: always). */
    slip: z.number().int().min(0).max(100).default(2),
    /** The client networks counted together. */
    ipv4_prefix: z.number().int().min(8).max(32).default(24),
    ipv6_prefix: z.number().int().min(16).max(128).default(56),
    /** Networks never limited (e.g. your own resolvers). */
    exempt: CidrListSchema,
    /** Client networks tracked at once (the oldest are forgotten first). */
    table_size: z.number().int().min(100).max(10_000_000).default(200_000),
  })
  .strict();

/** One DNSSEC key: an ECDSA P-256 private key (PEM) and what it does. */
export const DnssecKeySchema = z
  .object({
    /** PEM file (PKCS#8 or SEC1), relative to the config file; `npm run dns -- keygen --out FILE` makes one. */
    file: z.string().min(1),
    /** ksk: signs the DNSKEY set (its DS goes to the parent); zsk: signs the rest; csk: both. */
    role: z.enum(["ksk", "zsk", "csk"]),
    /** false: published in the DNSKEY set but not signing (a rollover's pre-publish or retire step). */
    active: z.boolean().default(true),
  })
  .strict();

/** `[dns.dnssec]`: online signing of every answer (algorithm 13), minimally covering NSEC for denial. */
export const DnssecSchema = z
  .object({
    keys: z.array(DnssecKeySchema).min(1),
    /** Seconds a signature holds; signatures are made anew every half of it. */
    signature_validity: z.number().int().min(7200).max(90 * 86_400).default(14 * 86_400),
    /** TTL of the DNSKEY set. */
    dnskey_ttl: ttl.default(3600),
  })
  .strict()
  .refine((d) => d.keys.some((k) => k.active && k.role !== "zsk"), { message: "needs an active ksk or csk (it signs the DNSKEY set)", path: ["keys"] })
  .refine((d) => d.keys.some((k) => k.active && k.role !== "ksk"), { message: "needs an active zsk or csk (it signs the zone's records)", path: ["keys"] });

export const DnsSchema = z
  .object({
    zone: hostname,
    ttl: ttl.default(30),
    nameservers: z.array(hostname).min(1),
    hostmaster: hostname,
    /** SOA serial; SOA refresh/retry/expire use common defaults unless given. */
    serial: z.number().int().min(0).max(2 ** 32 - 1).default(1),
    refresh: ttl.default(3600),
    retry: ttl.default(600),
    expire: ttl.default(604800),
    /** SOA MINIMUM: the negative-answer TTL; [dns] ttl when absent. */
    negative_ttl: ttl.optional(),
    records: z.array(DnsRecordSchema).default([]),
    director: DirectorSchema.default(DirectorSchema.parse({})),
    /** Proxies (addresses or CIDRs) whose X-Forwarded-For / Forwarded header is believed for DoH; nobody else's is. */
    trusted_proxies: CidrListSchema,
    /** Largest UDP answer sent even when a client advertises more (EDNS payload size). */
    max_udp_size: z.number().int().min(512).max(65535).default(1232),
    /** Certificate and key (PEM) for DoH over TLS (HTTP/2 and HTTP/1.1); relative to the config file. */
    tls_cert: z.string().min(1).optional(),
    tls_key: z.string().min(1).optional(),
    /** Address the Node host listens on; --host overrides. */
    listen: z.string().min(1).default("127.0.0.1"),
    /** UDP answers waiting to be sent by the Node host; more queries are dropped meanwhile. */
    max_inflight: z.number().int().min(1).max(100_000).default(1024),
    /** UDP I/O of the Node host: batched through the native addon (recvmmsg/sendmmsg) when it is built, or node:dgram. */
    udp_io: z.enum(["batched", "dgram"]).default("batched"),
    /** Bounds of the stream listeners (TCP, DoT, DoH) against hostile clients. */
    limits: LimitsSchema.prefault({}),
    /** Response rate limiting on UDP. */
    rrl: RrlSchema.prefault({}),
    /** DNSSEC online signing; absent: the zone is not signed. */
    dnssec: DnssecSchema.optional(),
    /** Edge health probes and fail-open. */
    health: HealthSchema.prefault({}),
    /** One JSON line per DNS query on stdout (time, transport, client, qname, qtype, rcode, answers, ecs, duration_us). */
    query_log: z.boolean().default(true),
  })
  .strict()
  .refine((d) => !d.tls_cert === !d.tls_key, { message: "tls_cert and tls_key go together" });

export const GeoipSchema = z
  .object({
    /** City database: MaxMind GeoIP2/GeoLite2-City or ip-location-db city mmdb; serves IPv6 too when it is IPv6-capable. */
    city: z.string().min(1).optional(),
    /** ASN database: MaxMind GeoLite2-ASN mmdb, or an ip-location-db ASN mmdb/CSV. */
    asn: z.string().min(1).optional(),
    /** Separate IPv6 files (ip-location-db ships one file per family). */
    city_v6: z.string().min(1).optional(),
    asn_v6: z.string().min(1).optional(),
    /** With no files named: use the embedded DB-IP/ip-location-db data installed with the project (false: no GeoIP). */
    embedded: z.boolean().default(true),
    /** A DNS node checks the named files this often and loads a changed one after a sanity check (0: never). */
    watch_interval_ms: z.number().int().min(0).max(86_400_000).default(60_000),
    /**
     * The City database comes from the fleet (`npm run fleet -- geoip push`, needs [control]); `city` (or the embedded
     * data) is used only until the first version arrives.
     */
    fleet: z.boolean().optional(),
  })
  .strict();

export const EdgeNodeSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]+$/),
    /** The edge's own base URL (scheme, address, port): health probes and purge fan-out go there. */
    url: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }).optional(),
    ipv4: z.ipv4().optional(),
    ipv6: z.ipv6().optional(),
    lat: z.number().min(-90).max(90),
    lon: z.number().min(-180).max(180),
    /** Share of load among equally near edges; 0 takes the edge out of DNS answers. */
    weight: z.number().min(0).max(1_000_000).default(1),
    /** Where the edge is: the fallback for clients whose country or continent is known but not their coordinates. */
    country: CountrySchema.optional(),
    continent: ContinentSchema.optional(),
    /** Pinning: clients in these countries / continents get this edge first, whatever the distance. */
    countries: z.array(CountrySchema).default([]),
    continents: z.array(ContinentSchema).default([]),
    /** Operator drain: out of DNS answers whatever its probes say (it keeps serving what reaches it). */
    drain: z.boolean().default(false),
  })
  .strict();

export type DnsRecordConfig = z.infer<typeof DnsRecordSchema>;
export type DirectorConfig = z.infer<typeof DirectorSchema>;
export type DnsConfig = z.infer<typeof DnsSchema>;
export type HealthConfig = z.infer<typeof HealthSchema>;
export type LimitsConfig = z.infer<typeof LimitsSchema>;
export type RrlConfig = z.infer<typeof RrlSchema>;
export type DnssecConfig = z.infer<typeof DnssecSchema>;
export type GeoipConfig = z.infer<typeof GeoipSchema>;
export type EdgeNode = z.infer<typeof EdgeNodeSchema>;
