import { describe, expect, it } from "vitest";
import { Catalog } from "./catalog.ts";
import { DailyStats } from "./stats.ts";

const DAY = 86_400_000;

function catalog() {
  const c = new Catalog();
  c.update([{ path: "/iso/a.iso", size: 10 }, { path: "/iso/b.iso", size: 20 }], 0);
  return c;
}

describe("DailyStats", () => {
  it("counts by outcome, file, mirror, country and reason, most asked file first", () => {
    const now = 20_000 * DAY + 1000;
    const s = new DailyStats(() => now);
    s.record("mirror", { path: "/iso/a.iso", listed: true, mirror: "lon", country: "GB" });
    s.record("mirror", { path: "/iso/b.iso", listed: true, mirror: "lon", country: "GB" });
    s.record("mirror", { path: "/iso/b.iso", listed: true, mirror: "nyc", country: "US" });
    s.record("cdn", { path: "/iso/b.iso", listed: true, reason: "no-mirror-has-it", country: "SE" });
    s.record("cdn", { path: "/iso/random-1", listed: false, reason: "not-listed", country: "<script>" });
    s.record("cdn", { reason: "never-redirect", country: "GB" });
    s.record("metalink", { path: "/iso/a.iso", listed: true, country: "GB" });
    s.record("apt-list", { country: "US" });
    const r = s.report();
    expect(r.day).toBe(new Date(20_000 * DAY).toISOString().slice(0, 10));
    expect(r.requests).toEqual({ mirror: 3, cdn: 3, metalink: 1, "apt-list": 1 });
    expect(r.mirrors).toEqual({ lon: 2, nyc: 1 });
    expect(r.countries).toEqual({ GB: 4, US: 2, SE: 1, unknown: 1 });
    expect(r.cdn_reasons).toEqual({ "no-mirror-has-it": 1, "not-listed": 1, "never-redirect": 1 });
    expect(r.not_listed).toBe(1);
    expect(r.files).toEqual([
      { path: "/iso/b.iso", mirror: 2, cdn: 1, metalink: 0 },
      { path: "/iso/a.iso", mirror: 1, cdn: 0, metalink: 1 },
    ]);
  });

  it("hands over the finished day at the first request of the next, and starts again", () => {
    let now = 20_000 * DAY + 5;
    const s = new DailyStats(() => now);
    expect(s.record("mirror", { path: "/iso/a.iso", listed: true, mirror: "lon", country: "GB" })).toBeUndefined();
    now += DAY;
    const finished = s.record("cdn", { path: "/iso/x", listed: false, reason: "not-listed" });
    expect(finished?.day).toBe(new Date(20_000 * DAY).toISOString().slice(0, 10));
    expect(finished?.requests.mirror).toBe(1);
    expect(finished?.updated).toMatch(/T23:59:59\.999Z$/);
    expect(s.report().requests).toEqual({ mirror: 0, cdn: 1, metalink: 0, "apt-list": 0 });
    expect(s.report().files).toEqual([]);
  });

  it("never grows with paths outside the catalog, however many are asked", () => {
    const s = new DailyStats(() => 20_000 * DAY);
    for (let i = 0; i < 10_000; i++) s.record("cdn", { path: `/iso/nothing-${i}`, listed: false, reason: "not-listed", country: "GB" });
    const r = s.report();
    expect(r.files).toEqual([]);
    expect(r.not_listed).toBe(10_000);
    expect(Object.keys(r.cdn_reasons)).toEqual(["not-listed"]);
  });

  it("continues today's document after a restart, taking only what is valid and in the catalog", () => {
    const now = 20_000 * DAY + 60_000;
    const before = new DailyStats(() => now);
    before.record("mirror", { path: "/iso/a.iso", listed: true, mirror: "lon", country: "GB" });
    const saved = JSON.parse(JSON.stringify(before.report()));
    saved.files.push({ path: "/iso/gone.iso", mirror: 5, cdn: 0, metalink: 0 }, { path: "/iso/b.iso", mirror: -3, cdn: "x", metalink: 1.5 });
    saved.countries["not a country"] = 7;
    const after = new DailyStats(() => now);
    expect(after.resume(saved, catalog())).toBe(true);
    after.record("mirror", { path: "/iso/a.iso", listed: true, mirror: "lon", country: "GB" });
    const r = after.report();
    expect(r.requests.mirror).toBe(2);
    expect(r.countries).toEqual({ GB: 2 });
    expect(r.files).toEqual([
      { path: "/iso/a.iso", mirror: 2, cdn: 0, metalink: 0 },
      { path: "/iso/b.iso", mirror: 0, cdn: 0, metalink: 0 },
    ]);
    expect(new DailyStats(() => now + DAY).resume(saved, catalog())).toBe(false); // yesterday's: not continued
    expect(after.resume("garbage", catalog())).toBe(false);
  });
});
