import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "./config.ts";

const NEIGHBOR = `
[[anycast.neighbors]]
name = "transit1"
address = "192.0.2.1"
as = 64511
`;
const base = (body: string, neighbors = NEIGHBOR) => `[anycast]\nservice = "edge"\nlocal_as = 64512\n${body}\n${neighbors}`;

function problems(text: string): string[] {
  try {
    parseConfig(text);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe("[anycast]", () => {
  it("parses a minimal table with the documented defaults", () => {
    const a = parseConfig(base(`prefixes = ["198.51.100.0/24"]`)).anycast!;
    expect(a).toMatchObject({
      service: "edge",
      prefixes: ["198.51.100.0/24"],
      local_as: 64512,
      communities: [],
      prepend: 0,
      interval_ms: 1000,
      timeout_ms: 800,
      down_after: 3,
      up_after: 3,
      withdraw_grace_ms: 5000,
      run_dir: "/run/parrot-cdn",
      bird: "/usr/sbin/bird",
      birdc: "/usr/sbin/birdc",
    });
    expect(a.neighbors[0]).toEqual({ name: "transit1", address: "192.0.2.1", as: 64511, port: 179 });
    expect(a.med).toBeUndefined();
  });

  it("is absent unless configured", () => {
    expect(parseConfig("").anycast).toBeUndefined();
  });

  it("names the field and the reason for bad prefixes", () => {
    expect(problems(base(`prefixes = ["198.51.100.1/24", "10.0.0.0/7", "nonsense", "2001:db8::/48"]`))).toEqual([
      'anycast.prefixes[0]: "198.51.100.1/24" has host bits set: write the network address',
      'anycast.prefixes[1]: "10.0.0.0/7" is wider than /8: not an anycast prefix',
      'anycast.prefixes[2]: "nonsense" is not a network such as 192.0.2.0/24 or 2001:db8::/48',
      "anycast.prefixes[3]: 2001:db8::/48 is IPv6 but no neighbor has an address of that family",
    ]);
    expect(problems(base(`prefixes = []`))).toEqual([expect.stringMatching(/^anycast\.prefixes: /)]);
  });

  it("checks communities, AS numbers, MED and prepend", () => {
    const p = problems(base(`prefixes = ["198.51.100.0/24"]\ncommunities = ["65536:1", "1:2:3", "a:b"]\nmed = -1\nprepend = 11`));
    expect(p).toContain('anycast.communities[0]: "65536:1" is not a community "asn:value" (16-bit parts) or large community "asn:a:b" (32-bit parts)');
    expect(p).toContain('anycast.communities[2]: "a:b" is not a community "asn:value" (16-bit parts) or large community "asn:a:b" (32-bit parts)');
    expect(p.some((x) => x.startsWith("anycast.med: "))).toBe(true);
    expect(p.some((x) => x.startsWith("anycast.prepend: "))).toBe(true);
    expect(p.some((x) => x.startsWith("anycast.communities[1]"))).toBe(false);
    expect(problems(`[anycast]\nservice = "edge"\nlocal_as = 23456\nprefixes = ["198.51.100.0/24"]\n${NEIGHBOR}`)).toEqual([
      "anycast.local_as: 23456 is AS_TRANS, not a real AS",
    ]);
    expect(problems(`[anycast]\nservice = "edge"\nlocal_as = 0\nprefixes = ["198.51.100.0/24"]\n${NEIGHBOR}`)).toEqual([
      "anycast.local_as: an AS number from 1 to 4294967295",
    ]);
  });

  it("checks neighbors: names usable in BIRD, unique, addresses of one family, passwords that cannot break the file", () => {
    const neighbors = `
[[anycast.neighbors]]
name = "transit-1"
address = "192.0.2.1"
as = 64511
[[anycast.neighbors]]
name = "ix"
address = "2001:db8::1"
local_address = "192.0.2.10"
as = 64500
password = 'a"b'
[[anycast.neighbors]]
name = "ix"
address = "192.0.2.300"
as = 64500
`;
    expect(problems(base(`prefixes = ["198.51.100.0/24"]`, neighbors))).toEqual([
      "anycast.neighbors[0].name: a letter, then letters, digits or '_' (at most 32)",
      "anycast.neighbors[1].password: 1 to 80 printable ASCII characters without quotes or backslashes",
      "anycast.neighbors[1].local_address: local_address must be of the same address family as address",
      "anycast.neighbors[2].address: an IPv4 or IPv6 address",
      'anycast.neighbors[2].name: neighbor name "ix" is used twice',
    ]);
    expect(problems(base(`prefixes = ["198.51.100.0/24"]`, `[[anycast.neighbors]]\nname = "a"\naddress = "2001:db8::1"\nlocal_address = "192.0.2.10"\nas = 1\n[[anycast.neighbors]]\nname = "b"\naddress = "192.0.2.1"\nas = 1`))).toEqual([
      "anycast.neighbors[0].local_address: local_address must be of the same address family as address",
    ]);
    expect(problems(base(`prefixes = ["198.51.100.0/24"]`, ""))).toEqual([expect.stringMatching(/^anycast\.neighbors: /)]);
  });

  it("refuses unknown fields, a missing service and a timeout longer than the interval", () => {
    expect(problems(base(`prefixes = ["198.51.100.0/24"]\nannounce = true`))).toEqual([expect.stringMatching(/^anycast: .*announce/)]);
    expect(problems(`[anycast]\nlocal_as = 1\nprefixes = ["198.51.100.0/24"]\n${NEIGHBOR}`)).toEqual([expect.stringMatching(/^anycast\.service: /)]);
    expect(problems(base(`prefixes = ["198.51.100.0/24"]\ninterval_ms = 500\ntimeout_ms = 600`))).toEqual([
      "anycast.timeout_ms: timeout_ms must not exceed interval_ms",
    ]);
    expect(problems(base(`prefixes = ["198.51.100.0/24"]\nmetrics_listen = "9180"`))).toEqual([
      'anycast.metrics_listen: host:port such as "127.0.0.1:9180" or "[::1]:9180"',
    ]);
  });
});
