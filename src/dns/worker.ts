/**
 * The GeoDNS worker entry (`npx wrangler dev --env dns`, workerd, Miniflare): DoH for the zone in CDN_CONFIG (or the
 * embedded cdn.toml). GeoIP databases arrive as bindings (Data modules or ArrayBuffer vars): GEOIP_CITY,
 * GEOIP_CITY_V6, GEOIP_ASN, GEOIP_ASN_V6 — MaxMind DB files of either schema, or ip-location-db's ASN CSV, opened
 * exactly as the Node host opens the same files (geoip/open.ts); without them the director answers from its fallbacks.
 *
 * Edge health: workerd has no timers between requests, so a probe round starts from request handling
 * (`ctx.waitUntil(monitor.maybeProbe())`) when one is due ([dns.health] interval_ms); the answer that starts it uses
 * the state known so far. State lives in the isolate: a new isolate starts by probing (unknown edges count as up),
 * and an /admin/drain call reaches only the isolate that served it (use `drain = true` in the config to drain for good).
 * The operator endpoints (/admin/drain, /metrics, /status, /status.json) are served as on the Node host; the query
 * log goes to console.log. What needs files or state shared between processes is the Node host's: /admin/reload and
 * /admin/acme-challenge answer 501 here, and a config with [dns.dnssec] (keys are files) is refused.
 */
import { parseConfig } from "../config/config.ts";
import { embeddedConfigText } from "../config/embedded.ts";
import { createGeoIp } from "../geoip/geoip.ts";
import { parseCidr, type Cidr } from "../net/ip.ts";
import { openGeoBytes } from "../geoip/open.ts";
import type { GeoSource } from "../geoip/types.ts";
import { createDnsNode, type DnsNodeParts } from "./node.ts";

export interface DnsEnv {
  CDN_CONFIG?: string;
  GEOIP_CITY?: ArrayBuffer | Uint8Array;
  GEOIP_CITY_V6?: ArrayBuffer | Uint8Array;
  GEOIP_ASN?: ArrayBuffer | Uint8Array;
  GEOIP_ASN_V6?: ArrayBuffer | Uint8Array;
}

/** Builds the node (zone, GeoIP, health monitor, observer, handler) from the worker's env. */
export function nodeFromEnv(env: DnsEnv): DnsNodeParts {
  const config = parseConfig(env.CDN_CONFIG?.trim() ? env.CDN_CONFIG : embeddedConfigText, "CDN_CONFIG");
  const sources: GeoSource[] = [];
  for (const bytes of [env.GEOIP_CITY, env.GEOIP_CITY_V6, env.GEOIP_ASN, env.GEOIP_ASN_V6])
    if (bytes && bytes.byteLength) sources.push(openGeoBytes(bytes));
  const trusted = (config.dns?.trusted_proxies ?? []).map((c) => parseCidr(c)).filter((c): c is Cidr => c !== null);
  return createDnsNode(config, { geoip: createGeoIp(sources), trusted, write: (line) => console.log(line), node: "worker" });
}

let cached: { env: DnsEnv; node: DnsNodeParts } | undefined;

/** The context's waitUntil, when there is one (Miniflare's and workerd's fetch handlers get it). */
type Ctx = { waitUntil(p: Promise<unknown>): void };

export default {
  async fetch(request: Request, env: DnsEnv, ctx?: Ctx): Promise<Response> {
    if (!cached || cached.env !== env) {
      try {
        cached = { env, node: nodeFromEnv(env) };
      } catch (err) {
        return new Response(`GeoDNS configuration error: ${(err as Error).message}\n`, { status: 500 });
      }
    }
    const probing = cached.node.monitor.maybeProbe();
    if (ctx) ctx.waitUntil(probing);
    return cached.node.fetch(request);
  },
};
