import { describe, expect, it } from "vitest";
import { distanceKm, networkSeed, seededDraw, selectEdges, selectEdgesDetailed, type Site } from "./select.ts";

const site = (name: string, lat: number, lon: number, extra: Partial<Site> = {}): Site => ({
  name, ipv4: `192.0.2.${name.length}`, ipv6: "2001:db8::1", lat, lon, weight: 1, countries: [], continents: [], ...extra,
});
const lon = site("lon", 51.51, -0.13, { country: "GB", continent: "EU" });
const fra = site("fra", 50.11, 8.68, { country: "DE", continent: "EU" });
const sfo = site("sfo", 37.77, -122.42, { country: "US", continent: "NA" });
const sin = site("sin", 1.35, 103.82, { country: "SG", continent: "AS" });
const all = [lon, fra, sfo, sin];
const opts = { count: 2, family: 4 as const, tieMargin: 0.05, defaults: ["sfo"], random: () => 0.5 };
const names = (s: Site[]) => s.map((x) => x.name);

describe("selectEdges", () => {
  it("measures great-circle distance", () => {
    expect(distanceKm(51.51, -0.13, 40.71, -74.0)).toBeGreaterThan(5550);
    expect(distanceKm(51.51, -0.13, 40.71, -74.0)).toBeLessThan(5590);
    expect(distanceKm(0, 179.9, 0, -179.9)).toBeLessThan(25);
  });

  it("orders by distance from the client", () => {
    expect(names(selectEdges(all, { lat: 48.85, lon: 2.35 }, opts))).toEqual(["lon", "fra"]);
    // Tokyo: Singapore 5,300 km, San Francisco 8,280 km, Frankfurt 9,350 km, London 9,560 km.
    expect(names(selectEdges(all, { lat: 35.68, lon: 139.69 }, { ...opts, count: 4 }))).toEqual(["sin", "sfo", "fra", "lon"]);
  });

  it("spreads load between equally near edges by weight", () => {
    const a = site("a", 10, 10, { weight: 1 });
    const b = site("b", 10, 10.001, { weight: 3 });
    const seen = { a: 0, b: 0 };
    let seed = 1;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (let i = 0; i < 4000; i++) seen[selectEdges([a, b], { lat: 0, lon: 0 }, { ...opts, count: 1, random })[0].name as "a" | "b"]++;
    expect(seen.b / 4000).toBeGreaterThan(0.7);
    expect(seen.b / 4000).toBeLessThan(0.8);
  });

  it("never returns weight-0 edges or edges without the family", () => {
    const off = { ...lon, weight: 0 };
    const v6only = { ...fra, ipv4: undefined };
    expect(names(selectEdges([off, v6only, sfo], { lat: 51, lon: 0 }, opts))).toEqual(["sfo"]);
    expect(names(selectEdges([off, v6only, sfo], { lat: 51, lon: 0 }, { ...opts, family: 6 }))).toEqual(["fra", "sfo"]);
  });

  it("puts pinned edges first, by country then continent", () => {
    const pinned = { ...sin, countries: ["FR"] };
    expect(names(selectEdges([lon, fra, sfo, pinned], { lat: 48.85, lon: 2.35, country: "FR", continent: "EU" }, opts))).toEqual(["sin", "lon"]);
    const cont = { ...sfo, continents: ["EU"] };
    expect(names(selectEdges([lon, fra, cont], { lat: 48.85, lon: 2.35, country: "FR", continent: "EU" }, opts))).toEqual(["sfo", "lon"]);
  });

  it("falls back to country, continent, then the default set without coordinates", () => {
    expect(names(selectEdges(all, { country: "DE", continent: "EU" }, opts))[0]).toBe("fra");
    expect(new Set(names(selectEdges(all, { country: "FR", continent: "EU" }, opts)))).toEqual(new Set(["lon", "fra"]));
    expect(names(selectEdges(all, null, opts))[0]).toBe("sfo");
    expect(names(selectEdges(all, { country: "ZZ" }, { ...opts, count: 1 }))).toEqual(["sfo"]);
  });

  describe("deterministic per client network", () => {
    // Unknown place: everything is a weighted draw among all edges.
    const edges = [
      site("a", 0, 0, { weight: 1, ipv6: "2001:db8::a" }),
      site("b", 0, 0, { weight: 2, ipv6: "2001:db8::b" }),
      site("c", 0, 0, { weight: 5, ipv6: "2001:db8::c" }),
    ];
    const seeded = { count: 2, family: 4 as const, tieMargin: 0.05, defaults: [] };
    const net = (i: number) => networkSeed(new Uint8Array([10, (i >> 8) & 255, i & 255, 0]));

    it("gives one client network the same edges every time and for A and AAAA alike", () => {
      for (let i = 0; i < 200; i++) {
        const seed = net(i);
        const a = names(selectEdges(edges, null, { ...seeded, seed }));
        expect(names(selectEdges(edges, null, { ...seeded, seed }))).toEqual(a);
        expect(names(selectEdges(edges, null, { ...seeded, seed, family: 6 }))).toEqual(a);
        // Also when the client is located but nothing is nearer than anything else.
        expect(names(selectEdges(edges, { lat: 40, lon: 40 }, { ...seeded, seed }))).toEqual(a);
      }
    });

    it("keeps the other edges' order when one edge lacks the family", () => {
      const noV6 = edges.map((e) => (e.name === "c" ? { ...e, ipv6: undefined } : e));
      for (let i = 0; i < 200; i++) {
        const seed = net(i);
        const v4 = names(selectEdges(noV6, null, { ...seeded, count: 3, seed })).filter((n) => n !== "c");
        expect(names(selectEdges(noV6, null, { ...seeded, count: 3, seed, family: 6 }))).toEqual(v4);
      }
    });

    it("spreads different client networks by weight", () => {
      const first = { a: 0, b: 0, c: 0 } as Record<string, number>;
      const N = 8000;
      for (let i = 0; i < N; i++) first[selectEdges(edges, null, { ...seeded, count: 1, seed: net(i) })[0].name]++;
      // Efraimidis–Spirakis: P(first) = weight / total = 1/8, 2/8, 5/8.
      expect(first.a / N).toBeCloseTo(1 / 8, 1);
      expect(first.b / N).toBeCloseTo(2 / 8, 1);
      expect(first.c / N).toBeCloseTo(5 / 8, 1);
    });

    it("draws uniformly in (0, 1) and reports when a draw decided the answer", () => {
      let sum = 0;
      for (let i = 0; i < 10000; i++) {
        const u = seededDraw(net(i), "x");
        expect(u > 0 && u < 1).toBe(true);
        sum += u;
      }
      expect(sum / 10000).toBeCloseTo(0.5, 1);
      expect(selectEdgesDetailed(edges, null, { ...seeded, seed: 1 }).tieBroken).toBe(true);
      expect(selectEdgesDetailed(all, { lat: 48.85, lon: 2.35 }, { ...seeded, seed: 1 }).tieBroken).toBe(false);
      expect(selectEdgesDetailed(all, null, { ...seeded, count: 1, defaults: ["sfo"], seed: 1 }).tieBroken).toBe(false);
    });
  });
});
