/**
 * Is this file a City database the director and the edge can use (pure)? It must be a MaxMind DB whose metadata fits
 * the file, whose lookups work, and whose records hold what the director answers by (a country and coordinates) and
 * what the edge puts in `request.cf` (country, city, coordinates). The records are found by walking the search tree
 * (bounded), so any edition is judged by its own data, not by a list of known addresses.
 */
import { Buffer } from "node:buffer";
import { Reader } from "mmdb-lib";
import { metadataProblem, normalizeRecord } from "./mmdb.ts";
import { metadataMarker } from "./open.ts";

export interface CityCheck {
  databaseType: string;
  ipVersion: 4 | 6;
  /** When the edition was built (its metadata). */
  built: number;
  /** Records sampled from the tree, and how many of them held a country and coordinates. */
  sampled: number;
  located: number;
}

/** How many tree nodes the walk visits at most, and how many records it samples. */
const MAX_NODES = 20_000;
const MAX_RECORDS = 256;

/** Throws an Error whose message says why the bytes are not a usable City database. */
export function checkCityDatabase(bytes: Uint8Array, now = Date.now()): CityCheck {
  const markerAt = metadataMarker(bytes);
  if (markerAt < 0) throw new Error("not a MaxMind DB (no metadata marker): a corrupt or truncated file, or another format");
  let reader: Reader<Record<string, unknown>>;
  try {
    reader = new Reader<Record<string, unknown>>(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    throw new Error(`not a readable MaxMind DB: ${(err as Error).message}`);
  }
  const m = reader.metadata;
  const problem = metadataProblem(m, bytes, markerAt, now);
  if (problem) throw new Error(`damaged MaxMind DB: ${problem}`);
  if (!/city/i.test(m.databaseType)) throw new Error(`database_type is ${m.databaseType}: a City database is needed (the director answers by location)`);
  let sampled = 0;
  let located = 0;
  try {
    for (const ip of sampleAddresses(bytes, m.nodeCount, m.recordSize, m.ipVersion as 4 | 6)) {
      const record = reader.get(ip);
      if (!record) continue;
      sampled++;
      const info = normalizeRecord(record);
      if (info.country && info.lat !== undefined && info.lon !== undefined) located++;
    }
  } catch (err) {
    throw new Error(`lookups fail: ${(err as Error).message}`);
  }
  if (!sampled) throw new Error("no record found in its search tree");
  if (!located) throw new Error(`none of ${sampled} records sampled has a country and coordinates (country.iso_code, location.latitude/longitude)`);
  return { databaseType: m.databaseType, ipVersion: m.ipVersion as 4 | 6, built: m.buildEpoch.getTime(), sampled, located };
}

/** Reads record `side` (0 left, 1 right) of node `n` (MaxMind DB format 2, record sizes 24, 28, 32). */
function readRecord(bytes: Uint8Array, n: number, side: 0 | 1, recordSize: number): number {
  const nodeBytes = (recordSize * 2) / 8;
  const at = n * nodeBytes;
  if (at + nodeBytes > bytes.length) throw new Error(`node ${n} lies beyond the file`);
  const b = (i: number) => bytes[at + i]!;
  if (recordSize === 24) return side === 0 ? (b(0) << 16) | (b(1) << 8) | b(2) : (b(3) << 16) | (b(4) << 8) | b(5);
  if (recordSize === 28) {
    return side === 0 ? ((b(3) & 0xf0) << 20) | (b(0) << 16) | (b(1) << 8) | b(2) : ((b(3) & 0x0f) << 24) | (b(4) << 16) | (b(5) << 8) | b(6);
  }
  if (recordSize === 32) {
    const v = side === 0 ? (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3) : (b(4) << 24) | (b(5) << 16) | (b(6) << 8) | b(7);
    return v >>> 0;
  }
  throw new Error(`record_size ${recordSize} (24, 28 or 32)`);
}

/** Addresses whose tree path ends at a data record: a breadth-first walk from the root, bounded. */
function sampleAddresses(bytes: Uint8Array, nodeCount: number, recordSize: number, ipVersion: 4 | 6): string[] {
  const bits = ipVersion === 6 ? 128 : 32;
  const out: string[] = [];
  const queue: { node: number; path: bigint; depth: number }[] = [{ node: 0, path: 0n, depth: 0 }];
  for (let visited = 0; queue.length && visited < MAX_NODES && out.length < MAX_RECORDS; visited++) {
    const { node, path, depth } = queue.shift()!;
    for (const side of [0, 1] as const) {
      const next = readRecord(bytes, node, side, recordSize);
      const p = (path << 1n) | BigInt(side);
      if (next < nodeCount && depth + 1 < bits) queue.push({ node: next, path: p, depth: depth + 1 });
      else if (next > nodeCount) out.push(addressOf(p << BigInt(bits - depth - 1), bits));
    }
  }
  return out;
}

function addressOf(value: bigint, bits: number): string {
  if (bits === 32) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join(".");
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((value >> s) & 0xffffn).toString(16));
  return groups.join(":");
}
