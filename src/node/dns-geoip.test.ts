import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadGeoIp } from "./dns-geoip.ts";

const fixtures = resolve(import.meta.dirname, "../../test/fixtures");
const dir = mkdtempSync(join(tmpdir(), "parrot-geoip-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("loading [geoip] files", () => {
  it("opens files relative to the config's folder, reuses unchanged ones, and refuses damaged replacements", async () => {
    copyFileSync(join(fixtures, "GeoIP2-City-Test.mmdb"), join(dir, "city.mmdb"));
    const first = await loadGeoIp({ city: "city.mmdb", embedded: true, watch_interval_ms: 0 }, dir);
    expect(first.geoip.lookup("81.2.69.142")?.info.city).toBe("London");
    expect(await loadGeoIp({ city: "city.mmdb", embedded: true, watch_interval_ms: 0 }, dir, { previous: first })).toBe(first);
    writeFileSync(join(dir, "city.mmdb"), Buffer.alloc(100, 1));
    await expect(loadGeoIp({ city: "city.mmdb", embedded: true, watch_interval_ms: 0 }, dir, { previous: first, strict: true })).rejects.toThrow(
      /no longer a MaxMind DB|shrank/,
    );
    await expect(loadGeoIp({ city: "missing.mmdb", embedded: true, watch_interval_ms: 0 }, dir)).rejects.toThrow(/cannot open .*missing\.mmdb/);
    expect((await loadGeoIp({ embedded: false, watch_interval_ms: 0 }, dir)).files).toEqual([]);
  });
});
