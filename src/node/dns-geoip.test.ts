import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { mmdbSource } from "../geoip/mmdb.ts";
import { metadataMarker } from "../geoip/open.ts";
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
      /no longer a MaxMind DB/,
    );
    await expect(loadGeoIp({ city: "missing.mmdb", embedded: true, watch_interval_ms: 0 }, dir)).rejects.toThrow(/cannot open .*missing\.mmdb/);
    expect((await loadGeoIp({ embedded: false, watch_interval_ms: 0 }, dir)).files).toEqual([]);
  });

  it("judges a replacement by validating it, not by its size", async () => {
    const cfg = { city: "city.mmdb", embedded: true, watch_interval_ms: 0 };
    const real = readFileSync(join(fixtures, "GeoIP2-City-Test.mmdb"));
    // A valid database three times as big: unused bytes between the data section and the metadata.
    const at = metadataMarker(real);
    writeFileSync(join(dir, "city.mmdb"), Buffer.concat([real.subarray(0, at), Buffer.alloc(real.length * 2), real.subarray(at)]));
    const big = await loadGeoIp(cfg, dir);
    expect(big.geoip.lookup("81.2.69.142")?.info.city).toBe("London");
    // The next edition is a third of the size: taken.
    writeFileSync(join(dir, "city.mmdb"), real);
    const small = await loadGeoIp(cfg, dir, { previous: big, strict: true });
    expect(small).not.toBe(big);
    expect(small.files[0]!.size).toBe(real.length);
    expect(small.geoip.lookup("81.2.69.142")?.info.city).toBe("London");
    // Metadata that does not fit the file: refused, also on SIGHUP (not strict).
    const noSeparator = Buffer.from(real);
    noSeparator[mmdbSource(real).metadata.searchTreeSize + 8] = 0x55; // within the 16 zero bytes after the tree
    writeFileSync(join(dir, "city.mmdb"), noSeparator);
    await expect(loadGeoIp(cfg, dir, { previous: small, strict: true })).rejects.toThrow(/damaged MaxMind DB: no data section separator/);
    await expect(loadGeoIp(cfg, dir)).rejects.toThrow(/city\.mmdb: damaged MaxMind DB/);
    // Another database type (ASN for City) waits for the operator's SIGHUP.
    writeFileSync(join(dir, "city.mmdb"), readFileSync(join(fixtures, "GeoLite2-ASN-Test.mmdb")));
    await expect(loadGeoIp(cfg, dir, { previous: small, strict: true })).rejects.toThrow(/is a GeoLite2-ASN database now, it was GeoIP2-City/);
    expect((await loadGeoIp(cfg, dir, { previous: small })).files[0]!.databaseType).toBe("GeoLite2-ASN");
  });

  it("refuses a CSV table cut off mid-line in place of a whole one", async () => {
    const cfg = { asn: "asn.csv", embedded: true, watch_interval_ms: 0 };
    const csv = "1.0.0.0,1.0.0.255,13335,Cloudflare\n1.0.4.0,1.0.7.255,38803,Wirefreebroadband\n";
    writeFileSync(join(dir, "asn.csv"), csv);
    const whole = await loadGeoIp(cfg, dir);
    writeFileSync(join(dir, "asn.csv"), csv.slice(0, 20));
    await expect(loadGeoIp(cfg, dir, { previous: whole, strict: true })).rejects.toThrow(/asn\.csv ends mid-line/);
    writeFileSync(join(dir, "asn.csv"), csv.slice(0, csv.indexOf("\n") + 1)); // one whole line: a smaller table
    expect((await loadGeoIp(cfg, dir, { previous: whole, strict: true })).geoip.lookup("1.0.0.1")?.info.asn).toBe(13335);
  });
});
