/**
 * What a box of the fleet runs: the shared cdn.toml of a fleet version with the box's own fields from its local
 * file (pure). The local file keeps what differs per box — its name, its store, its process count, its own TLS
 * files, how it reaches NATS, its admin token, its anycast speaker — and the fleet everything else (rules, origins,
 * cache settings, [[edges]], [dns], [[sites]], …). Paths in both are resolved from the local file's folder.
 */
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";

/** `[edge]` fields that are the box's own. */
export const BOX_EDGE_FIELDS = ["name", "region", "store_dir", "store_max_bytes", "store_max_entries", "store_inactive", "processes", "tls_cert", "tls_key"] as const;
/** Tables that are the box's own, whole. */
export const BOX_TABLES = ["control", "admin", "anycast"] as const;

type Toml = Record<string, unknown>;

function tomlOf(text: string, what: string): Toml {
  try {
    return parseToml(text) as Toml;
  } catch (err) {
    throw new Error(`${what}: TOML syntax: ${(err as Error).message.split("\n")[0]}`);
  }
}

/** The config text a box runs: `shared` (a fleet version) with the box's fields and tables from `local`. */
export function boxConfigText(shared: string, local: string): string {
  const out = tomlOf(shared, "the fleet version");
  const own = tomlOf(local, "the box's own file");
  for (const table of BOX_TABLES) {
    if (own[table] !== undefined) out[table] = own[table];
    else delete out[table];
  }
  const ownEdge = (own.edge ?? {}) as Toml;
  const edge = { ...((out.edge ?? {}) as Toml) };
  for (const field of BOX_EDGE_FIELDS) {
    if (ownEdge[field] !== undefined) edge[field] = ownEdge[field];
    else delete edge[field];
  }
  out.edge = edge;
  return stringifyToml(out);
}

/** Whether the local file asks for the fleet's configuration (`[control] fleet = true`). */
export function wantsFleet(local: string): boolean {
  const control = tomlOf(local, "the box's own file").control as Toml | undefined;
  return control?.fleet === true;
}
