import { describe, expect, it } from "vitest";
import { forwardedHost } from "./client-address.ts";
import { parseCidr, type Cidr } from "./ip.ts";

const loopback = [parseCidr("127.0.0.0/8")!] as Cidr[];

describe("forwardedHost (a shield keys an edge's fill under the site's host)", () => {
  it("believes X-Forwarded-Host from a trusted proxy only", () => {
    expect(forwardedHost("127.0.0.1", "www.example.org", loopback)).toBe("www.example.org");
    expect(forwardedHost("127.0.0.1:5555", "WWW.Example.org:8443", loopback)).toBe("www.example.org:8443");
    expect(forwardedHost("192.0.2.7", "www.example.org", loopback)).toBeUndefined();
    expect(forwardedHost("127.0.0.1", "www.example.org", [])).toBeUndefined();
    expect(forwardedHost(undefined, "www.example.org", loopback)).toBeUndefined();
  });

  it("takes one valid host[:port], nothing else", () => {
    for (const bad of ["a.example, b.example", "a.example/path", "user@a.example", "", "a b"]) {
      expect(forwardedHost("127.0.0.1", bad, loopback), bad).toBeUndefined();
    }
  });
});
