/** For the DNS unit tests: a server over the test zone with the MaxMind City and ASN test databases. */
import { readFileSync } from "node:fs";
import { parseConfig } from "../../src/config/config.ts";
import type { Server } from "../../src/dns/answer.ts";
import { buildZone } from "../../src/dns/zone.ts";
import { createGeoIp, type GeoIp } from "../../src/geoip/geoip.ts";
import { mmdbSource } from "../../src/geoip/mmdb.ts";
import { TEST_ZONE_TOML } from "./dns-zone.ts";

/** A file in test/fixtures. */
export const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/${name}`, import.meta.url));

/** The MaxMind City and ASN test databases. */
export function testGeoIp(): GeoIp {
  return createGeoIp([mmdbSource(fixture("GeoIP2-City-Test.mmdb")), mmdbSource(fixture("GeoLite2-ASN-Test.mmdb"))]);
}

/** A server over the test zone (or `toml`) with the test databases. */
export function testServer(toml = TEST_ZONE_TOML): Server {
  return { zone: buildZone(parseConfig(toml)), geoip: testGeoIp(), udpSize: 1232 };
}
