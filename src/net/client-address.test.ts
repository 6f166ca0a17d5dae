import { describe, expect, it } from "vitest";
import { forwardedHost } from "./client-address.ts";

describe("forwardedHost (a shield keys an edge's fill under the site's host)", () => {
  it("takes one valid host[:port], lower case", () => {
    expect(forwardedHost("www.example.org")).toBe("www.example.org");
    expect(forwardedHost(" WWW.Example.org:8443 ")).toBe("www.example.org:8443");
    expect(forwardedHost("[2001:db8::1]:8080")).toBe("[2001:db8::1]:8080");
  });

  it("nothing else: lists, paths, credentials, spaces, nothing", () => {
    for (const bad of ["a.example, b.example", "a.example/path", "user@a.example", "", "a b", null]) {
      expect(forwardedHost(bad), String(bad)).toBeUndefined();
    }
  });
});
