import { describe, expect, it } from "vitest";
import { ChallengeStore, checkChallenge } from "./challenges.ts";

describe("ACME challenge records", () => {
  it("holds several values per name for their ttl, and names above them exist", () => {
    let now = 0;
    const s = new ChallengeStore(10, () => now);
    s.add("_acme-challenge.WWW.geo.example.org.", "one", 10);
    s.add("_acme-challenge.www.geo.example.org", "two", 20);
    expect(s.values("_acme-challenge.www.geo.example.org")).toEqual(["one", "two"]);
    expect(s.exists("_acme-challenge.www.geo.example.org")).toBe(true);
    expect(s.exists("www.geo.example.org")).toBe(true); // an empty non-terminal while the record lives
    expect(s.exists("other.geo.example.org")).toBe(false);
    const v = s.version;
    now = 10_000;
    expect(s.values("_acme-challenge.www.geo.example.org")).toEqual(["two"]);
    expect(s.version).toBe(v + 1);
    now = 20_000;
    expect(s.size).toBe(0);
    expect(s.exists("www.geo.example.org")).toBe(false);
  });

  it("refreshes a value added again, removes one or all, and refuses a new value past the limit", () => {
    const s = new ChallengeStore(2, () => 0);
    s.add("_acme-challenge.a.z", "1", 5);
    s.add("_acme-challenge.a.z", "2", 5);
    expect(s.add("_acme-challenge.a.z", "3", 5)).toBe("full");
    expect(s.add("_acme-challenge.a.z", "2", 50)).toMatchObject({ op: "add", expiresAt: 50_000 });
    s.remove("_acme-challenge.a.z", "1");
    expect(s.values("_acme-challenge.a.z")).toEqual(["2"]);
    s.remove("_acme-challenge.a.z");
    expect(s.size).toBe(0);
  });

  it("rebuilds another process's store from its changes and snapshot", () => {
    const a = new ChallengeStore(10, () => 0);
    const b = new ChallengeStore(10, () => 0);
    b.apply(a.add("_acme-challenge.x.z", "v", 60) as never);
    const c = new ChallengeStore(10, () => 0);
    for (const ch of b.snapshot()) c.apply(ch);
    expect(c.values("_acme-challenge.x.z")).toEqual(["v"]);
    c.apply(a.remove("_acme-challenge.x.z", "v"));
    expect(c.size).toBe(0);
  });

  it("accepts only _acme-challenge names inside the zone and printable values of 1 to 255 characters", () => {
    const z = "geo.example.org";
    expect(checkChallenge("_acme-challenge.www.geo.example.org", "abc", z)).toBeUndefined();
    expect(checkChallenge("_ACME-Challenge.geo.example.org.", "abc", z)).toBeUndefined();
    expect(checkChallenge("_acme-challenge.www.example.com", "abc", z)).toMatch(/inside the zone/);
    expect(checkChallenge("www.geo.example.org", "abc", z)).toMatch(/start with _acme-challenge/);
    expect(checkChallenge("_acme-challenge..geo.example.org", "abc", z)).toMatch(/not a DNS name/);
    expect(checkChallenge(42, "abc", z)).toMatch(/must be a DNS name/);
    expect(checkChallenge("_acme-challenge.geo.example.org", "", z)).toMatch(/1 to 255/);
    expect(checkChallenge("_acme-challenge.geo.example.org", "x".repeat(256), z)).toMatch(/1 to 255/);
    expect(checkChallenge("_acme-challenge.geo.example.org", "tab\there", z)).toMatch(/printable/);
    expect(checkChallenge("_acme-challenge.geo.example.org", undefined, z, false)).toBeUndefined();
  });
});
