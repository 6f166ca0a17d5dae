/** Schema of the edge cache's part of cdn.toml: the `[edge]` table and the ordered `[[rules]]`. */
import { z } from "zod";
import { CidrListSchema } from "./cidr.ts";

const seconds = z.number().int().min(0).max(2 ** 31);
/** A slice: 64 KiB to 1 GiB. */
const sliceBytes = z.number().int().min(64 * 1024).max(1024 ** 3);
/** 0 (never slice) or at least one slice's worth. */
const sliceThreshold = z.number().int().min(0).max(2 ** 50);
const names = z.array(z.string().min(1)).default([]);

/** Request conditions (nginx's proxy_cache_bypass / proxy_no_cache): any named item present and not "" or "0". */
/** Slice size and threshold defaults, chosen by measurement (docs/mirrors.md). */
export const DEFAULT_SLICE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_SLICE_THRESHOLD_BYTES = 32 * 1024 * 1024;

export const RequestConditionSchema = z
  .object({ cookies: names, headers: names, args: names })
  .strict();

/** One operator rule; the first rule whose path, methods and hosts match a request applies. */
export const RuleSchema = z
  .object({
    /** Path glob: `*` matches within a segment, `**` across segments. */
    path: z.string().startsWith("/").default("/**"),
    methods: z.array(z.string().regex(/^[A-Z]+$/, "methods are upper-case tokens")).optional(),
    hosts: z.array(z.string().min(1)).optional(),
    /** Freshness when the origin gives none (proxy_cache_valid), by status code or "any". */
    ttl: z.record(z.string().regex(/^(\d{3}|any)$/, 'keys are status codes or "any"'), seconds).optional(),
    /** Freshness that overrides whatever the origin says. */
    force_ttl: seconds.optional(),
    stale_while_revalidate: seconds.optional(),
    stale_if_error: seconds.optional(),
    bypass: RequestConditionSchema.optional(),
    no_store: RequestConditionSchema.optional(),
    /** Origin response headers the cache decides without (e.g. "cache-control", "expires", "set-cookie", "vary"). */
    ignore_origin_headers: z.array(z.string().min(1).transform((s) => s.toLowerCase())).optional(),
    /** Store an object only after this many requests for it (proxy_cache_min_uses). */
    min_uses: z.number().int().min(1).optional(),
    /** How the query string enters the cache key. */
    query: z.enum(["keep", "sort", "drop"]).optional(),
    /** Slicing of large objects under this rule ([edge] slice_bytes / slice_threshold_bytes; 0 = never slice). */
    slice_bytes: sliceBytes.optional(),
    slice_threshold_bytes: sliceThreshold.optional(),
  })
  .strict();

const OriginUrl = z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" });

/** One origin of several. */
export const OriginSchema = z
  .object({
    url: OriginUrl,
    /** Lower numbers are preferred; an origin with a higher number is a backup. */
    priority: z.number().int().min(0).default(0),
    /** Share of requests among origins of the same priority. */
    weight: z.number().int().min(1).default(1),
  })
  .strict();

/** A shield: another edge box this edge fills from (tiered cache); its `name` is that box's `[edge] name`. */
export const ShieldSchema = z
  .object({
    /** The shield box's own `[edge] name` (what it writes in Via, CDN-Loop and Cache-Status); this box skips itself. */
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, "letters, digits, '.', '_' and '-' only"),
    url: OriginUrl,
    /** A regional shield: only edges of this `[edge] region` fill from it (first); without one, a fleet-wide shield. */
    region: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "letters, digits, '.', '_' and '-' only (at most 64)").optional(),
  })
  .strict();

export const EdgeSchema = z
  .object({
    /** This edge's name: the cache name in Cache-Status and Via. */
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, "letters, digits, '.', '_' and '-' only").default("edge"),
    /** This box's region (its own field in a fleet): it fills from its region's shields, then the fleet-wide ones. */
    region: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "letters, digits, '.', '_' and '-' only (at most 64)").optional(),
    /** Where requests go: one origin, or several in `origins`. */
    origin: OriginUrl.optional(),
    /** Several origins: the lowest priority number with a healthy member serves (higher numbers are backups). */
    origins: z.array(OriginSchema).min(1).optional(),
    /**
     * Shield boxes this edge fills from (tiered cache): a GET or HEAD goes to the shield the cache key hashes to
     * (rendezvous), then the next one in that key's order when it fails, then the origins. Failures and timeouts use
     * the origin_* settings.
     */
    shields: z.array(ShieldSchema).min(1, "name at least one shield, or leave `shields` out").optional(),
    /**
     * Active health of the shields: each edge process probes every shield's health endpoint every interval_ms (from
     * request handling: workerd has no timers of its own), and skips one after down_after failed probes in a row, until
     * up_after good ones, which also end a skip that failures caused. interval_ms = 0: passive health only.
     */
    shield_health: z
      .object({
        interval_ms: z.number().int().min(0).max(3_600_000).default(5000),
        timeout_ms: z.number().int().min(100).max(60_000).default(2000),
        down_after: z.number().int().min(1).max(100).default(2),
        up_after: z.number().int().min(1).max(100).default(1),
      })
      .strict()
      .prefault({}),
    /** Passive origin health (nginx's max_fails / fail_timeout): this many failures in a row skip an origin... */
    origin_max_fails: z.number().int().min(1).default(3),
    /** ...for this many seconds. */
    origin_fail_timeout: seconds.default(10),
    /** Origin statuses that count as failures and move an idempotent request to the next origin (e.g. [502, 503]). */
    origin_retry_status: z.array(z.number().int().min(500).max(599)).default([]),
    /** Time allowed for the origin to send response headers. */
    origin_timeout_ms: z.number().int().min(1).max(600_000).default(30_000),
    /**
     * Time a slice fetch's origin body may take to bring its next MiB (or its end) before the fetch is given up and its
     * connection closed: a stalled origin then frees the requests waiting for that slice. 0 = no limit.
     */
    origin_idle_timeout_ms: z.number().int().min(0).max(600_000).default(30_000),
    /**
     * How long concurrent requests wait for another request's origin fetch (proxy_cache_lock_timeout); a slice fetch
     * holds its lock longer while its body goes into the store.
     */
    lock_timeout_ms: z.number().int().min(0).max(600_000).default(5_000),
    /** Responses with Set-Cookie: "bypass" = never store, "strip" = store without the cookie, "store" = store it. */
    set_cookie: z.enum(["bypass", "strip", "store"]).default("bypass"),
    /** A client's `Cache-Control: no-cache` / `max-age=0`: "revalidate" with the origin, or "ignore" it. */
    client_no_cache: z.enum(["revalidate", "ignore"]).default("revalidate"),
    /** Heuristic freshness: this fraction of the time since Last-Modified, at most heuristic_max seconds. */
    heuristic_fraction: z.number().min(0).max(1).default(0.1),
    heuristic_max: seconds.default(86_400),
    /** How long a stale entry with validators is kept for revalidation after its stale windows. */
    keep: seconds.default(86_400),
    /** Largest object stored whole, in bytes; larger ones are stored in slices (or passed through). */
    max_object_bytes: z.number().int().min(0).default(512 * 1024 * 1024),
    /**
     * Large objects are fetched and stored in aligned slices of slice_bytes (src/cache/slices.ts). A GET of an unknown
     * object asks the origin for its first slice_threshold_bytes (a Range request): objects that fit are stored whole,
     * larger ones in slices; a Range request asks for the one slice it starts in. 0 = never slice (no Range sent).
     */
    slice_bytes: sliceBytes.default(DEFAULT_SLICE_BYTES),
    slice_threshold_bytes: sliceThreshold.default(DEFAULT_SLICE_THRESHOLD_BYTES),
    /** Start draining: the health endpoint says "draining", so DNS nodes leave this edge out of answers. */
    draining: z.boolean().default(false),
    /**
     * A successful POST/PUT/DELETE/PATCH removes the URL (and its Location / Content-Location) from this edge's cache
     * (RFC 9111 §4.4). Off: unsafe methods never evict, so clients cannot force misses, but a changed resource stays
     * cached until it expires or is purged.
     */
    invalidate_on_unsafe: z.boolean().default(true),
    /** One JSON line per request on stdout. */
    access_log: z.boolean().default(true),
    /** Proxies (CIDRs) whose X-Forwarded-For is believed; nobody else's is. */
    trusted_proxies: CidrListSchema,
    /** Bare workerd: the directory of the disk cache store (created when missing; relative to the working directory). */
    store_dir: z.string().min(1).default(".parrot/store"),
    /** Bare workerd: bytes the disk store may hold (nginx's max_size); least recently used entries go first. */
    store_max_bytes: z.number().int().min(1024 * 1024).default(10 * 1024 ** 3),
    /**
     * Bare workerd: entries the disk store may hold (its index is in memory, about 0.7 KB per entry, like nginx's
     * keys_zone): a flood of small unique objects evicts the least recently used rather than grow the box's RSS.
     */
    store_max_entries: z.number().int().min(1000).default(500_000),
    /** Bare workerd: entries unused this many seconds are deleted (nginx's inactive). */
    store_inactive: seconds.default(7 * 86_400),
    /**
     * Bare workerd: a body block that matched its digest is served natively (no JavaScript on its bytes) for this
     * many seconds; the first read after that checks it again. 0: every read is checked in JavaScript.
     */
    store_recheck_seconds: seconds.default(600),
    /** The in-isolate memory tier in front of the store: total bytes (0 = off) and largest object. */
    hot_max_bytes: z.number().int().min(0).default(64 * 1024 * 1024),
    hot_max_object_bytes: z.number().int().min(0).default(1024 * 1024),
    /**
     * Bare workerd: edge processes sharing the listening socket (one per core); above 1 the store runs in a process
     * of its own that every edge process reaches over a unix socket (and that holds the coalescing locks).
     */
    processes: z.number().int().min(1).max(256).default(1),
    /**
     * Compression at the edge: text-like responses the origin sent uncompressed are stored and served as br or gzip
     * to clients that accept them (one variant per set of acceptable codings); origin-compressed bodies pass as they are.
     */
    compress: z.boolean().default(true),
    /** Content types compressed (`type/*` matches a whole family). */
    compress_types: z
      .array(z.string().regex(/^[a-z0-9!#$&^_.+-]+\/([a-z0-9!#$&^_.+-]+|\*)$/, 'a media type such as "text/html" or "text/*"'))
      .default(["text/*", "application/javascript", "application/json", "application/xml", "application/rss+xml", "application/atom+xml", "application/manifest+json", "image/svg+xml", "application/wasm"]),
    /** Smaller bodies are not worth it (headers and framing dominate). */
    compress_min_bytes: z.number().int().min(0).default(1024),
    /** Larger bodies pass uncompressed (compression runs once, at store time, on the whole body). */
    compress_max_bytes: z.number().int().min(0).max(64 * 1024 * 1024).default(8 * 1024 * 1024),
    /**
     * Bytes of bodies being compressed at once in one edge process: a body that would go beyond passes uncompressed
     * (identity), so compression holds at most about twice this in memory (the bodies and their output).
     */
    compress_budget_bytes: z.number().int().min(0).max(1024 * 1024 * 1024).default(32 * 1024 * 1024),
    /** Bare workerd: serve HTTPS with this certificate chain and private key (PEM files); both or neither. */
    tls_cert: z.string().min(1).optional(),
    tls_key: z.string().min(1).optional(),
  })
  .strict()
  .refine((e) => e.origin !== undefined || e.origins !== undefined, {
    message: "set `origin` (one URL) or `origins` (a list)",
    path: ["origin"],
  })
  .refine((e) => !(e.origin !== undefined && e.origins !== undefined), {
    message: "set either `origin` or `origins`, not both",
    path: ["origins"],
  })
  .refine((e) => new Set((e.shields ?? []).map((s) => s.name)).size === (e.shields ?? []).length, {
    message: "each shield needs a name of its own (the rendezvous hash and the metrics tell them apart by name)",
    path: ["shields"],
  });

export type RequestCondition = z.infer<typeof RequestConditionSchema>;
export type Rule = z.infer<typeof RuleSchema>;
export type EdgeConfig = z.infer<typeof EdgeSchema>;
export type OriginConfig = z.infer<typeof OriginSchema>;
export type ShieldConfig = z.infer<typeof ShieldSchema>;

/** The origins of an edge, whichever way the file names them. */
export function originsOf(edge: EdgeConfig): OriginConfig[] {
  return edge.origins ?? [{ url: edge.origin!, priority: 0, weight: 1 }];
}
