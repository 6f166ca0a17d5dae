/** The debug TXT: PowerDNS GeoIP backend placeholders filled from a GeoIP result, split into 255-byte strings. Pure. */
import { alpha3 } from "../geoip/countries.ts";
import type { GeoInfo } from "../geoip/types.ts";

const UNKNOWN = "unknown";

/** What a template is filled from. */
export interface TxtContext {
  /** The address located (the ECS network address, or the client's). */
  ip: string;
  family: 4 | 6;
  info: GeoInfo;
}

/** Lowercases ASCII letters only: `Linköping` → `linköping`, as PowerDNS does. */
const lower = (s: string) => s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
const value = (v: string | number | undefined) => (v === undefined || v === "" ? UNKNOWN : lower(String(v)));

/** PowerDNS's LOC-style text: `51 30 51.00 N 0 7 39.00 W`. */
export function formatLoc(lat: number, lon: number): string {
  const dms = (deg: number, pos: string, neg: string) => {
    const a = Math.abs(deg);
    const d = Math.floor(a);
    const m = Math.floor((a - d) * 60);
    const s = ((a - d) * 60 - m) * 60;
    return `${d} ${m} ${s.toFixed(2)} ${deg < 0 ? neg : pos}`;
  };
  return `${dms(lat, "N", "S")} ${dms(lon, "E", "W")}`;
}

/** Fills a template: %ip %af %ci %cc %co %cn %re %na %as %lat %lon %loc and %% ; other text is kept as written. */
export function formatTxt(template: string, ctx: TxtContext): string {
  const i = ctx.info;
  return template.replace(/%(ip4|ip6|ip|af|ci|cc|co|cn|re|na|as|lat|lon|loc|%)/g, (_, key: string) => {
    switch (key) {
      case "%":
        return "%";
      case "ip":
        return ctx.ip;
      case "ip4":
        return ctx.family === 4 ? ctx.ip : "0.0.0.0";
      case "ip6":
        return ctx.family === 6 ? ctx.ip : "::";
      case "af":
        return ctx.family === 4 ? "v4" : "v6";
      case "ci":
        return value(i.city);
      case "cc":
        return value(i.country);
      case "co":
        return value(alpha3(i.country));
      case "cn":
        return value(i.continent);
      case "re":
        return value(i.region);
      case "na":
        return value(i.asOrg);
      case "as":
        return i.asn === undefined ? UNKNOWN : `as${i.asn}`;
      case "lat":
        return i.lat === undefined ? UNKNOWN : i.lat.toFixed(4);
      case "lon":
        return i.lon === undefined ? UNKNOWN : i.lon.toFixed(4);
      default: // loc
        return i.lat === undefined || i.lon === undefined ? UNKNOWN : formatLoc(i.lat, i.lon);
    }
  });
}

/** Splits text into TXT character-strings of at most 255 bytes (UTF-8), never inside a character. */
export function splitTxt(text: string): Uint8Array[] {
  const bytes = new TextEncoder().encode(text);
  const out: Uint8Array[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(start + 255, bytes.length);
    // Step back off UTF-8 continuation bytes.
    while (end < bytes.length && end > start && (bytes[end] & 0xc0) === 0x80) end--;
    out.push(bytes.subarray(start, end));
    start = end;
  }
  if (out.length === 0) out.push(new Uint8Array(0));
  return out;
}
