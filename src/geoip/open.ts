/**
 * One way to open GeoIP data from bytes, used by the worker (bindings, Data modules) and the Node host (files) alike:
 * a MaxMind DB (either schema) when the bytes carry the mmdb metadata marker, else an ip-location-db ASN CSV table.
 */
import { mmdbSource } from "./mmdb.ts";
import { asnCsvSource } from "./ranges.ts";
import type { GeoSource } from "./types.ts";

/** "\xAB\xCD\xEFMaxMind.com": starts the metadata section, within the last 128 KiB of an mmdb file. */
const MARKER = [0xab, 0xcd, 0xef, 0x4d, 0x61, 0x78, 0x4d, 0x69, 0x6e, 0x64, 0x2e, 0x63, 0x6f, 0x6d];

/** Where the (last) mmdb metadata marker starts; -1 when there is none. */
export function metadataMarker(b: Uint8Array): number {
  const from = Math.max(0, b.length - 128 * 1024);
  for (let i = b.length - MARKER.length; i >= from; i--) {
    if (b[i] !== MARKER[0]) continue;
    let k = 1;
    while (k < MARKER.length && b[i + k] === MARKER[k]) k++;
    if (k === MARKER.length) return i;
  }
  return -1;
}

/** True when the bytes look like a MaxMind DB. */
export function isMmdb(b: Uint8Array): boolean {
  return metadataMarker(b) >= 0;
}

/** Opens GeoIP bytes of either kind; throws when they are neither (or a damaged mmdb). */
export function openGeoBytes(bytes: ArrayBuffer | Uint8Array): GeoSource {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (isMmdb(b)) return mmdbSource(b);
  const csv = asnCsvSource(b);
  if (csv.size === 0) throw new Error("neither a MaxMind DB nor an ip-location-db ASN CSV");
  return csv;
}
