/**
 * Schema of the mirror redirector's part of cdn.toml: the community mirrors (`[[mirrors]]`) and `[redirector]` (the
 * paths it answers for, what it never redirects, where the origin's file lists are, how mirrors are scanned).
 */
import { z } from "zod";
import { CidrSchema } from "./cidr.ts";
import { ContinentSchema, CountrySchema } from "./places.ts";
import { parseIp } from "../net/ip.ts";

const asn = z.number().int().min(1).max(2 ** 32 - 1);
const ipAddress = z.string().refine((s) => parseIp(s) !== null, "an IPv4 or IPv6 address");
/** A path glob as [[rules]] use: `*` within a segment, `**` across segments. */
const glob = z.string().startsWith("/", "a path starting with /");
/** A base URL: the mirror's copy of the origin's `/`. */
const baseUrl = z
  .url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" })
  .refine((u) => !u.includes("?") && !u.includes("#"), "a base URL without query or fragment")
  .transform((u) => (u.endsWith("/") ? u : `${u}/`));

/** One community mirror. */
export const MirrorSchema = z
  .object({
    /** Short name: metrics labels, the mirror list, logs. */
    name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "letters, digits, '.', '_' and '-' only (at most 64)"),
    /** Where the mirror keeps its copy of the origin's `/` (http or https). */
    url: baseUrl,
    /** Location: coordinates, or looked up in the GeoIP data from `address` (or the URL's host when it is an address). */
    lat: z.number().min(-90).max(90).optional(),
    lon: z.number().min(-180).max(180).optional(),
    /** The mirror's public address, to locate it with the GeoIP data when lat/lon are not given. */
    address: ipAddress.optional(),
    country: CountrySchema.optional(),
    continent: ContinentSchema.optional(),
    /** The mirror's AS: clients in the same AS prefer it. */
    asn: asn.optional(),
    /** Share of clients among mirrors of similar distance (0 keeps it out of answers, still scanned). */
    weight: z.number().min(0).max(1_000_000).default(100),
    /** Serves only clients in these countries / continents / ASes (empty: everybody). */
    countries: z.array(CountrySchema).default([]),
    continents: z.array(ContinentSchema).default([]),
    asns: z.array(asn).default([]),
    /** Never serves clients in these countries / continents / ASes. */
    exclude_countries: z.array(CountrySchema).default([]),
    exclude_continents: z.array(ContinentSchema).default([]),
    exclude_asns: z.array(asn).default([]),
    /** The parts of the origin it carries (a partial mirror: e.g. ["/iso/**"]); default all. */
    paths: z.array(glob).default(["/**"]),
    /** A file on the mirror whose content changes with each sync (Debian's project/trace/<origin>), relative to url. */
    trace: z.string().min(1).optional(),
    /** Its rsync module for the origin's root (`rsync://host/module/`): one listing checks every file (needs rsync). */
    rsync: z
      .string()
      .regex(/^rsync:\/\/[^\s/]+\/\S*$/, "an rsync:// URL of the mirror's module, e.g. rsync://mirror.example/parrot/")
      .optional(),
    /** false: out of every answer and not scanned; "maintenance" is the same, said for the status page. */
    enabled: z.boolean().default(true),
    maintenance: z.boolean().default(false),
  })
  .strict()
  .refine((m) => (m.lat === undefined) === (m.lon === undefined), { message: "lat and lon go together", path: ["lon"] })
  .refine((m) => m.lat !== undefined || m.address !== undefined || parseIp(new URL(m.url).hostname.replace(/^\[|\]$/g, "")) !== null, {
    message: "give lat and lon, or address (its public IP, located with the GeoIP data), or a url whose host is an IP address",
    path: ["lat"],
  });

/** A file list published by the origin: SHA256SUMS (`<hex>  <name>`) or an apt Packages index (plain or .gz). */
export const IndexSchema = z
  .object({
    /** Path of the list on the origin. */
    path: z.string().startsWith("/", "a path on the origin, starting with /"),
    kind: z.enum(["sha256sums", "packages"]),
    /** Names in the list are relative to this folder (default: the list's own folder; an apt archive's root for Packages). */
    root: z.string().startsWith("/", "a folder on the origin, starting with /").optional(),
  })
  .strict();

/** `[[mirrors]]`: names are unique (they label metrics and answers). */
export const MirrorListSchema = z
  .array(MirrorSchema)
  .default([])
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((m, i) => {
      if (seen.has(m.name)) ctx.addIssue({ code: "custom", message: `another mirror is already named ${m.name}`, path: [i, "name"] });
      seen.add(m.name);
    });
  });

export const RedirectorSchema = z
  .object({
    /** Where the redirector listens (the Node host). */
    listen: z.string().min(1).default("127.0.0.1"),
    port: z.number().int().min(0).max(65535).default(8790),
    /** The origin: its file lists are read, its files' sizes asked (HEAD) where the list has none. */
    origin: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }),
    /** The CDN itself (an edge's or the site's base URL): files no mirror has, and what is never redirected. */
    cdn: baseUrl,
    /** Paths answered by the redirector (others: 404). */
    paths: z.array(glob).min(1, "name at least one path, e.g. /iso/**"),
    /** Never redirected: served by the CDN itself through the redirector (signed indexes). */
    never_redirect: z.array(glob).default(["/**/InRelease", "/**/Release", "/**/Release.gpg"]),
    /** The origin's file lists. */
    indexes: z.array(IndexSchema).default([]),
    /** An apt mirror list tailored to the client is served at this path for this archive root, e.g. "/debian/". */
    apt_mirrorlist: z.string().startsWith("/").optional(),
    apt_archive: z.string().startsWith("/").endsWith("/").optional(),
    /** Networks the GeoIP data cannot place (private, your own): located as this public address is. */
    networks: z.array(z.object({ cidr: CidrSchema, locate_as: ipAddress }).strict()).default([]),
    /** Proxies whose X-Forwarded-For is believed (nobody else's is). */
    trusted_proxies: z.array(CidrSchema).default([]),
    /** Mirrors within this many km of the nearest share its clients (by weight). */
    spread_km: z.number().min(0).max(20_000).default(500),
    /** Mirrors named in Link headers and the Metalink. */
    alternatives: z.number().int().min(1).max(50).default(5),
    /** Between scan rounds of each mirror, and of the origin's lists. */
    scan_interval_ms: z.number().int().min(100).max(86_400_000).default(300_000),
    /** Files checked (HEAD) on one mirror per round: the newest first, then the rest in turn. */
    scan_files_per_round: z.number().int().min(1).max(1_000_000).default(500),
    /** Mirrors scanned at once (the rest wait their turn in the round). */
    scan_mirrors_at_once: z.number().int().min(1).max(1024).default(16),
    /** HEAD requests in flight at once, per mirror. */
    scan_concurrency: z.number().int().min(1).max(64).default(4),
    scan_timeout_ms: z.number().int().min(100).max(120_000).default(10_000),
    /** Consecutive failed requests that take a mirror out; one good scan round brings it back. */
    max_failures: z.number().int().min(1).max(1000).default(3),
    /** A folder for the daily statistics (one JSON document per UTC day, today's rewritten every minute); none: in memory only. */
    stats_dir: z.string().min(1).optional(),
    /** Days of statistics kept in stats_dir. */
    stats_days: z.number().int().min(1).max(3660).default(30),
    /** How DNS nodes reach this redirector (its base URL): their status page shows every mirror's freshness and health. */
    public_url: baseUrl.optional(),
    /** This box's name among redirector boxes (with [control]: scans are shared) and in its scans' User-Agent; default the host name. */
    name: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, "letters, digits, '.', '_' and '-' only (at most 128)").optional(),
    /** With [control]: between this box's heartbeats; a box silent for 3 of them is gone and its mirrors move to the others. */
    fleet_heartbeat_ms: z.number().int().min(100).max(600_000).default(5_000),
    /** Mirrors' states kept across a restart (without [control] the only way): written after every round (temp + rename), read at start. */
    state_file: z.string().min(1).optional(),
  })
  .strict()
  .refine((r) => (r.apt_mirrorlist === undefined) === (r.apt_archive === undefined), {
    message: "apt_mirrorlist and apt_archive go together",
    path: ["apt_archive"],
  });

export type MirrorConfig = z.infer<typeof MirrorSchema>;
export type RedirectorConfig = z.infer<typeof RedirectorSchema>;
export type IndexConfig = z.infer<typeof IndexSchema>;
