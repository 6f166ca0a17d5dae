import { describe, expect, it } from "vitest";
import { ClientAddresses, DailyKey } from "./client-addresses.ts";
import { siphash24 } from "./siphash.ts";
import { parseIp } from "../net/ip.ts";
import { parseConfig } from "../config/config.ts";

const DAY = 86_400_000;
const defaults = { client_addresses: "truncate", ipv4_prefix: 24, ipv6_prefix: 48 } as const;

describe("siphash24", () => {
  // The reference implementation's test vectors: key 00..0f, message 00..n-1.
  const key = Uint8Array.from({ length: 16 }, (_, i) => i);
  const msg = (n: number) => Uint8Array.from({ length: n }, (_, i) => i);
  it.each([
    [0, 0x726fdb47dd0e0e31n],
    [1, 0x74f839c593dc67fdn],
    [7, 0xab0200f58b01d137n],
    [8, 0x93f5f5799a932462n],
    [15, 0xa129ca6149be45e5n],
    [63, 0x958a324ceb064572n],
  ])("matches the reference for %i bytes", (n, expected) => {
    expect(siphash24(key, msg(n))).toBe(expected);
  });
});

describe("ClientAddresses", () => {
  it("truncates IPv4 to /24 and IPv6 to /48 by default, IPv4-mapped as IPv4", () => {
    const c = new ClientAddresses(defaults);
    expect(c.text("81.2.69.142")).toBe("81.2.69.0/24");
    expect(c.text("::ffff:81.2.69.142")).toBe("81.2.69.0/24");
    expect(c.text("2001:db8:1234:5678::1")).toBe("2001:db8:1234::/48");
    expect(c.text("not an address")).toBe("invalid");
  });

  it("keeps the operator's prefixes, and full addresses when asked", () => {
    expect(new ClientAddresses({ ...defaults, ipv4_prefix: 16, ipv6_prefix: 32 }).text("81.2.69.142")).toBe("81.2.0.0/16");
    expect(new ClientAddresses({ ...defaults, client_addresses: "full" }).text("2001:DB8::1")).toBe("2001:db8::1");
  });

  it("never writes an ECS subnet more precisely than truncation keeps", () => {
    const c = new ClientAddresses(defaults);
    expect(c.subnet(parseIp("81.2.69.142")!, 32)).toBe("81.2.69.0/24");
    expect(c.subnet(parseIp("81.2.69.142")!, 16)).toBe("81.2.0.0/16");
    expect(new ClientAddresses({ ...defaults, client_addresses: "full" }).subnet(parseIp("81.2.69.142")!, 32)).toBe("81.2.69.142/32");
  });

  it("hashes with a key of the day: same address same hash within a day, another hash the next day", () => {
    let now = 20_000 * DAY + 1000;
    const c = new ClientAddresses({ ...defaults, client_addresses: "hash" }, DailyKey.fresh(now), () => now);
    const a = c.text("81.2.69.142");
    expect(a).toMatch(/^h[0-9a-f]{16}$/);
    expect(c.text("81.2.69.142")).toBe(a);
    expect(c.text("81.2.69.143")).not.toBe(a);
    now += DAY;
    expect(c.text("81.2.69.142")).not.toBe(a);
  });

  it("processes given the host's key agree, and keep agreeing after the day changes", () => {
    let now = 20_000 * DAY + 5;
    const host = DailyKey.fresh(now);
    const hash = { ...defaults, client_addresses: "hash" } as const;
    const first = new ClientAddresses(hash, DailyKey.parse(host.serialize(now))!, () => now);
    now += DAY + 7; // the host hands a later process the next day's key; the first process moves forward itself
    const second = new ClientAddresses(hash, DailyKey.parse(host.serialize(now))!, () => now);
    expect(second.text("2001:db8::1")).toBe(first.text("2001:db8::1"));
  });

  it("moves forward only: a clock that goes back keeps today's key", () => {
    let now = 20_000 * DAY;
    const key = DailyKey.fresh(now);
    now += 2 * DAY;
    const today = Array.from(key.at(now));
    expect(Array.from(key.at(now - 2 * DAY))).toEqual(today);
  });

  it("parses only its own key form", () => {
    expect(DailyKey.parse("12:" + "ab".repeat(16))).not.toBeNull();
    expect(DailyKey.parse("12:" + "ab".repeat(15))).toBeNull();
    expect(DailyKey.parse("x:" + "ab".repeat(16))).toBeNull();
  });
});

describe("[privacy] in cdn.toml", () => {
  it("defaults to truncated addresses and a week of logs", () => {
    expect(parseConfig("").privacy).toEqual({ client_addresses: "truncate", ipv4_prefix: 24, ipv6_prefix: 48, log_retention_days: 7 });
  });
  it("names the field and the reason", () => {
    expect(() => parseConfig('[privacy]\nclient_addresses = "all"\nipv6_prefix = 200')).toThrow(/privacy\.client_addresses: .*\n.*privacy\.ipv6_prefix: must be 0–128/);
  });
});
