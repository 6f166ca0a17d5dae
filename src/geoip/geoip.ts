/**
 * The GeoIP lookup the DNS handler uses: several sources (City and ASN, maybe one file per family); the address
 * family picks the sources; for each field the first source with a value wins (as in PowerDNS).
 */
import { formatIp, parseIp } from "../net/ip.ts";
import type { GeoInfo, GeoResult, GeoSource } from "./types.ts";

/** Locates addresses with the given sources, in order of precedence. */
export interface GeoIp {
  lookup(ip: string | Uint8Array): GeoResult | null;
}

const LOCATION_FIELDS = new Set<keyof GeoInfo>(["city", "country", "continent", "region", "lat", "lon"]);

/** Combines sources; with none, every lookup is null (the director falls back to its default set). */
export function createGeoIp(sources: GeoSource[]): GeoIp {
  return {
    lookup(ip) {
      const bytes = typeof ip === "string" ? parseIp(ip) : ip;
      if (!bytes) return null;
      const family = bytes.length === 4 ? 4 : 6;
      const text = formatIp(bytes);
      const info: GeoInfo = {};
      let locationPrefix = -1;
      let prefix = -1;
      let any = false;
      for (const source of sources) {
        if (!source.families.has(family)) continue;
        const hit = source.lookup(text, bytes);
        if (!hit) continue;
        any = true;
        let location = false;
        for (const [k, v] of Object.entries(hit.info) as [keyof GeoInfo, never][]) {
          if (v === undefined || info[k] !== undefined) continue;
          info[k] = v;
          if (LOCATION_FIELDS.has(k)) location = true;
        }
        if (location || (locationPrefix < 0 && hit.info.asn === undefined)) locationPrefix = Math.max(locationPrefix, hit.prefix);
        prefix = Math.max(prefix, hit.prefix);
      }
      if (!any) return null;
      return { info, locationPrefix: Math.max(0, locationPrefix), prefix: Math.max(0, prefix) };
    },
  };
}
