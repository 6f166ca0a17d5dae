/**
 * What a live reload of an edge box can apply and what only a restart can: the edge workers follow a new cdn.toml
 * within a second (rules, origins, cache settings, [admin], [[edges]]), while the store's bounds, the process
 * count, workerd's own TLS socket, the GeoIP files bound into it, the front door's sites, the control plane and
 * the anycast speaker are set up at start.
 */
import type { CdnConfig } from "../config/config.ts";

/** Fields read only at start: `table.field`, or a whole table. */
const RESTART_ONLY = [
  "edge.store_dir", "edge.store_max_bytes", "edge.store_max_entries", "edge.store_inactive", "edge.processes", "edge.tls_cert", "edge.tls_key",
  "geoip", "sites", "frontdoor", "acme", "control", "anycast",
] as const;

/** The restart-only fields that differ between two configs, for the reload's log line. */
export function restartOnlyChanges(before: CdnConfig, after: CdnConfig): string[] {
  const at = (c: CdnConfig, path: string) => path.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], c);
  return RESTART_ONLY.filter((p) => JSON.stringify(at(before, p)) !== JSON.stringify(at(after, p)));
}
