/**
 * The DNS tests' one zone (unit tests, the DNS worker under Miniflare, the DNS node's e2e tests): the issue's
 * example with three edges on three continents. Text only (no runtime imports), so the worker tests load it too.
 */

/** Three edges on three continents (London, Seattle, Beijing). */
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

/** [dns] and [dns.director] of the test zone (no [geoip]: each runtime binds the test databases its own way). */
export const TEST_DNS_TOML = `
[dns]
zone = "geo.example.org"
ttl = 30
nameservers = ["ns1.geo.example.org", "ns2.example.org"]
hostmaster = "hostmaster.example.org"
records = [ { name = "www", type = "CNAME", value = "director.geo.example.org." },
            { name = "ns1", type = "A", value = "192.0.2.53" },
            { name = "local", type = "A", value = "127.0.0.1" },
            { name = "a.b.deep", type = "TXT", value = "deep" },
            { name = "@", type = "MX", value = "10 mail" },
            { name = "big", type = "TXT", value = "${"b".repeat(700)}" } ]

[dns.director]
name = "director"
answers = 2
txt = "ip %ip %af city %ci country %cc %co state %cn region %re name %na as %as"
default = ["us-sea"]
`;

/** The whole test zone: [dns], [dns.director] and the edges. */
export const TEST_ZONE_TOML = `${TEST_DNS_TOML}${TEST_EDGES_TOML}`;
