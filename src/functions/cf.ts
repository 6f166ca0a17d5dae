/**
 * `request.cf` for a site's function, from what the edge knows: the client's location and network from the box's
 * GeoIP data and the edge's name as `colo`, with Cloudflare's field names (IncomingRequestCfProperties).
 */
import type { GeoInfo } from "../geoip/types.ts";

export interface FunctionCf {
  colo: string;
  country?: string;
  continent?: string;
  city?: string;
  /** Cloudflare: ISO 3166-2 code of the first subdivision ("ENG"), and its name where only a name is known. */
  regionCode?: string;
  region?: string;
  /** Cloudflare gives coordinates as text. */
  latitude?: string;
  longitude?: string;
  asn?: number;
  asOrganization?: string;
  /** Cloudflare: "HTTP/1.1", "HTTP/2"... as the client used it (the edge knows only what reached workerd). */
  httpProtocol?: string;
  /** The EU member states (Cloudflare's `isEUCountry`: "1" or absent). */
  isEUCountry?: "1";
}

const EU = new Set("AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split(" "));

export function functionCf(colo: string, info: GeoInfo | undefined): FunctionCf {
  const cf: FunctionCf = { colo };
  if (!info) return cf;
  if (info.country) cf.country = info.country;
  if (info.country && EU.has(info.country)) cf.isEUCountry = "1";
  if (info.continent) cf.continent = info.continent;
  if (info.city) cf.city = info.city;
  if (info.region) {
    // MaxMind gives the ISO 3166-2 suffix, ip-location-db the subdivision's name.
    if (/^[A-Z0-9]{1,3}$/.test(info.region)) cf.regionCode = info.region;
    else cf.region = info.region;
  }
  if (info.lat !== undefined && info.lon !== undefined) {
    cf.latitude = String(info.lat);
    cf.longitude = String(info.lon);
  }
  if (info.asn !== undefined) cf.asn = info.asn;
  if (info.asOrg) cf.asOrganization = info.asOrg;
  return cf;
}
