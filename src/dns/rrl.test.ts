import { describe, expect, it } from "vitest";
import { parseCidr, parseIp } from "../net/ip.ts";
import { ResponseRateLimiter, type RrlSettings } from "./rrl.ts";

const settings = (over: Partial<RrlSettings> = {}): RrlSettings => ({
  rate: 10, burst: 10, slip: 2, ipv4Prefix: 24, ipv6Prefix: 56, exempt: [], tableSize: 1000, ...over,
});
const ip = (s: string) => parseIp(s)!;

describe("response rate limiting", () => {
  it("answers a network's budget, then drops and slips every second limited response", () => {
    let now = 0;
    const rrl = new ResponseRateLimiter(settings(), () => now);
    const verdicts = Array.from({ length: 16 }, (_, i) => rrl.check(ip(`198.51.100.${i}`))); // one /24
    expect(verdicts.slice(0, 10).every((v) => v === "answer")).toBe(true);
    expect(verdicts.slice(10)).toEqual(["drop", "slip", "drop", "slip", "drop", "slip"]);
    // Another network is not affected.
    expect(rrl.check(ip("198.51.101.1"))).toBe("answer");
    // The budget refills at `rate` a second.
    now = 500;
    const refill = Array.from({ length: 6 }, () => rrl.check(ip("198.51.100.7")));
    expect(refill.filter((v) => v === "answer")).toHaveLength(5);
  });

  it("counts IPv6 clients per /56, exempts listed networks, and turns off at rate 0", () => {
    const rrl = new ResponseRateLimiter(settings({ rate: 1, burst: 1, slip: 0, exempt: [parseCidr("10.0.0.0/8")!] }), () => 0);
    expect(rrl.check(ip("2001:db8:0:1100::1"))).toBe("answer");
    expect(rrl.check(ip("2001:db8:0:11ff::2"))).toBe("drop"); // same /56
    expect(rrl.check(ip("2001:db8:0:1200::1"))).toBe("answer");
    for (let i = 0; i < 5; i++) expect(rrl.check(ip("10.1.2.3"))).toBe("answer");
    rrl.configure(settings({ rate: 0 }));
    expect(rrl.check(ip("2001:db8:0:1100::1"))).toBe("answer");
  });

  it("keeps its table bounded", () => {
    const rrl = new ResponseRateLimiter(settings({ tableSize: 100 }), () => 0);
    for (let i = 0; i < 1000; i++) rrl.check(ip(`10.${i >> 8}.${i & 255}.1`));
    expect(rrl.size).toBeLessThanOrEqual(100);
  });
});
