/**
 * The edge's own paths under `/.well-known/cdn/` (RFC 8615): DNS nodes probe health, operators and the purge CLI call
 * the rest. One list, imported by the edge, the DNS node's prober and the CLIs.
 */
export const WELL_KNOWN_PREFIX = "/.well-known/cdn/";
export const HEALTH_PATH = "/.well-known/cdn/health";
export const PURGE_PATH = "/.well-known/cdn/purge";
export const DRAIN_PATH = "/.well-known/cdn/drain";
export const METRICS_PATH = "/.well-known/cdn/metrics";
export const TRACE_PATH = "/.well-known/cdn/trace";
export const ANYCAST_PATH = "/.well-known/cdn/anycast";
export const CONTROL_PATH = "/.well-known/cdn/control";
/** The mirror redirector's status document (src/contracts/mirrors-status.ts), read by DNS nodes' status pages. */
export const MIRRORS_PATH = "/.well-known/cdn/mirrors";
/** The mirror redirector's daily statistics. */
export const MIRROR_STATS_PATH = "/.well-known/cdn/mirrors/stats";
