/** Shared by the unit tests: a zone like the example and the MaxMind test databases. Not used at run time. */
import { readFileSync } from "node:fs";
import { parseConfig } from "../config/config.ts";
import { createGeoIp } from "../geoip/geoip.ts";
import { mmdbSource } from "../geoip/mmdb.ts";
import type { Server } from "./answer.ts";
import { buildZone } from "./zone.ts";

/** Three edges on three continents (London, Seattle, Beijing): the unit and e2e tests' edge set. */
export const TEST_EDGES_TOML = `
[[edges]]
name = "gb-lon"
ipv4 = "192.0.2.21"
ipv6 = "2001:db8:21::1"
lat = 51.51
lon = -0.13

[[edges]]
name = "us-sea"
ipv4 = "192.0.2.22"
ipv6 = "2001:db8:22::1"
lat = 47.61
lon = -122.33

[[edges]]
name = "cn-pek"
ipv4 = "192.0.2.23"
ipv6 = "2001:db8:23::1"
lat = 39.9
lon = 116.4
`;

export const TEST_TOML = `
[dns]
zone = "geo.example.org"
ttl = 30
nameservers = ["ns1.geo.example.org", "ns2.example.org"]
hostmaster = "hostmaster.example.org"
records = [ { name = "www", type = "CNAME", value = "director.geo.example.org." },
            { name = "ns1", type = "A", value = "192.0.2.53" },
            { name = "a.b.deep", type = "TXT", value = "deep" },
            { name = "@", type = "MX", value = "10 mail" },
            { name = "big", type = "TXT", value = "${"x".repeat(600)}" } ]

[dns.director]
name = "director"
answers = 2
txt = "ip %ip %af city %ci country %cc %co state %cn region %re name %na as %as"
default = ["us-sea"]

${TEST_EDGES_TOML}`;

const fixture = (name: string) => readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url));

/** A server over TEST_TOML (or `toml`) with the MaxMind City and ASN test databases. */
export function testServer(toml = TEST_TOML): Server {
  const geoip = createGeoIp([mmdbSource(fixture("GeoIP2-City-Test.mmdb")), mmdbSource(fixture("GeoLite2-ASN-Test.mmdb"))]);
  return { zone: buildZone(parseConfig(toml)), geoip, udpSize: 1232 };
}
