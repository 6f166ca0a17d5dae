/**
 * MaxMind DB files through mmdb-lib, both schemas: MaxMind GeoIP2/GeoLite2 (City, Country, ASN) and the flat
 * ip-location-db one (country_code, city, state1, latitude, longitude; autonomous_system_* for ASN files).
 * Bytes come from the host (a file in Node, a Data module or binding in workerd), so this works everywhere.
 */
import { Buffer } from "node:buffer";
import { Reader } from "mmdb-lib";
import { continentOf } from "./countries.ts";
import type { GeoHit, GeoInfo, GeoSource } from "./types.ts";

type Bytes = ArrayBuffer | Uint8Array;

/** What a MaxMind DB says about itself (its metadata section). */
export type MmdbMetadata = Reader<Record<string, unknown>>["metadata"];

/** Opens an mmdb file held in memory; throws when the bytes are not a MaxMind DB. */
export function mmdbSource(bytes: Bytes): GeoSource & { databaseType: string; metadata: MmdbMetadata } {
  const buf = bytes instanceof Uint8Array ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : Buffer.from(bytes);
  const reader = new Reader<Record<string, unknown>>(buf);
  const v6 = reader.metadata.ipVersion === 6;
  return {
    databaseType: reader.metadata.databaseType,
    metadata: reader.metadata,
    // An IPv4-only file gives garbage for IPv6 lookups: it answers IPv4 only.
    families: new Set<4 | 6>(v6 ? [4, 6] : [4]),
    lookup(ip: string, bytes: Uint8Array): GeoHit | null {
      if (!v6 && bytes.length !== 4) return null;
      const [record, prefix] = reader.getWithPrefixLength(ip);
      return { info: record ? normalizeRecord(record) : {}, prefix };
    },
  };
}

/**
 * What is wrong with an mmdb file's metadata, judged against its bytes (MaxMind DB format 2): null when it is sane.
 * `markerAt` is where the metadata marker starts; the search tree and the 16 zero bytes after it come before it.
 */
export function metadataProblem(m: MmdbMetadata, bytes: Uint8Array, markerAt: number, now = Date.now()): string | null {
  if (m.binaryFormatMajorVersion !== 2) return `binary format ${m.binaryFormatMajorVersion}, not 2`;
  if (m.ipVersion !== 4 && m.ipVersion !== 6) return `ip_version ${m.ipVersion}`;
  if (typeof m.databaseType !== "string" || m.databaseType === "") return "no database_type";
  if (!Number.isInteger(m.nodeCount) || m.nodeCount <= 0) return `node_count ${m.nodeCount}`;
  if (m.searchTreeSize + 16 > markerAt) return `its search tree (${m.nodeCount} nodes) does not fit in the file`;
  for (let i = m.searchTreeSize; i < m.searchTreeSize + 16; i++)
    if (bytes[i] !== 0) return "no data section separator after the search tree";
  const built = m.buildEpoch.getTime();
  if (!Number.isFinite(built) || built <= 0 || built > now + 86_400_000) return `build_epoch ${Number.isFinite(built) ? m.buildEpoch.toISOString() : "invalid"}`;
  return null;
}

/** Maps a record of either schema onto GeoInfo. */
export function normalizeRecord(r: Record<string, unknown>): GeoInfo {
  const info: GeoInfo = {};
  const obj = (v: unknown) => (v && typeof v === "object" ? (v as Record<string, unknown>) : undefined);
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
  // MaxMind schema.
  const country = obj(r.country) ?? obj(r.registered_country);
  info.country = str(country?.iso_code)?.toUpperCase() ?? str(r.country_code)?.toUpperCase();
  info.continent = str(obj(r.continent)?.code)?.toUpperCase() ?? continentOf(info.country);
  info.city = str(obj(obj(r.city)?.names)?.en) ?? str(r.city);
  const subdivisions = Array.isArray(r.subdivisions) ? r.subdivisions : [];
  info.region = str(obj(subdivisions[0])?.iso_code) ?? str(r.state1);
  const location = obj(r.location);
  info.lat = num(location?.latitude) ?? num(r.latitude);
  info.lon = num(location?.longitude) ?? num(r.longitude);
  info.asn = num(r.autonomous_system_number);
  info.asOrg = str(r.autonomous_system_organization);
  for (const k of Object.keys(info) as (keyof GeoInfo)[]) if (info[k] === undefined) delete info[k];
  return info;
}
