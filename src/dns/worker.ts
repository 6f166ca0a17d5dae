/**
 * The GeoDNS worker entry (`npx wrangler dev --env dns`, workerd, Miniflare): DoH for the zone in CDN_CONFIG (or the
 * embedded cdn.toml). GeoIP databases arrive as bindings (Data modules or ArrayBuffer vars): GEOIP_CITY,
 * GEOIP_CITY_V6, GEOIP_ASN, GEOIP_ASN_V6 — MaxMind DB files of either schema, or ip-location-db's ASN CSV, opened
 * exactly as the Node host opens the same files (geoip/open.ts); without them the director answers from its fallbacks.
 */
import { parseConfig } from "../config/config.ts";
import { embeddedConfigText } from "../config/embedded.ts";
import { createGeoIp } from "../geoip/geoip.ts";
import { parseCidr, type Cidr } from "../net/ip.ts";
import { openGeoBytes } from "../geoip/open.ts";
import type { GeoSource } from "../geoip/types.ts";
import type { Server } from "./answer.ts";
import { createDohHandler } from "./doh.ts";
import { buildZone } from "./zone.ts";

export interface DnsEnv {
  CDN_CONFIG?: string;
  GEOIP_CITY?: ArrayBuffer | Uint8Array;
  GEOIP_CITY_V6?: ArrayBuffer | Uint8Array;
  GEOIP_ASN?: ArrayBuffer | Uint8Array;
  GEOIP_ASN_V6?: ArrayBuffer | Uint8Array;
}

/** Builds the server (zone, GeoIP) from the worker's env. */
export function serverFromEnv(env: DnsEnv): { server: Server; trusted: Cidr[] } {
  const config = parseConfig(env.CDN_CONFIG?.trim() ? env.CDN_CONFIG : embeddedConfigText, "CDN_CONFIG");
  const sources: GeoSource[] = [];
  for (const bytes of [env.GEOIP_CITY, env.GEOIP_CITY_V6, env.GEOIP_ASN, env.GEOIP_ASN_V6])
    if (bytes && bytes.byteLength) sources.push(openGeoBytes(bytes));
  const zone = buildZone(config);
  const trusted = (config.dns?.trusted_proxies ?? []).map((c) => parseCidr(c)).filter((c): c is Cidr => c !== null);
  return {
    server: { zone, geoip: createGeoIp(sources), udpSize: config.dns?.max_udp_size ?? 1232 },
    trusted,
  };
}

let cached: { env: DnsEnv; fetch: (r: Request) => Promise<Response> } | undefined;

export default {
  async fetch(request: Request, env: DnsEnv): Promise<Response> {
    if (!cached || cached.env !== env) {
      try {
        const { server, trusted } = serverFromEnv(env);
        cached = { env, fetch: createDohHandler(() => server, trusted) };
      } catch (err) {
        return new Response(`GeoDNS configuration error: ${(err as Error).message}\n`, { status: 500 });
      }
    }
    return cached.fetch(request);
  },
};
