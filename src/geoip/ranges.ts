/**
 * ip-location-db's ASN CSV ("start,end,asn,organisation", text addresses, one family per file) as a sorted range
 * table with binary search: the embedded AS data, which that project ships as CSV only.
 */
import { parseIp } from "../net/ip.ts";
import type { GeoHit, GeoSource } from "./types.ts";

const toBig = (bytes: Uint8Array): bigint => {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
};

/** Splits one CSV line with optional "quoted, fields" ("" escapes a quote). */
export function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let v = "";
      i++;
      while (i < line.length) {
        if (line[i] === '"' && line[i + 1] === '"') {
          v += '"';
          i += 2;
        } else if (line[i] === '"') {
          i++;
          break;
        } else v += line[i++];
      }
      out.push(v);
      i++; // the comma
    } else {
      const j = line.indexOf(",", i);
      const end = j < 0 ? line.length : j;
      out.push(line.slice(i, end));
      i = end + 1;
    }
  }
  return out;
}

/** Builds an ASN source from CSV text of one family; malformed lines are skipped. */
export function asnCsvSource(text: string): GeoSource & { size: number } {
  const starts: bigint[] = [];
  const ends: bigint[] = [];
  const asns: number[] = [];
  const orgIndex: number[] = [];
  const orgs: string[] = [];
  const orgIds = new Map<string, number>();
  let family: 4 | 6 | undefined;
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [a, b, asn, org] = splitCsvLine(line.replace(/\r$/, ""));
    const start = parseIp(a ?? "");
    const end = parseIp(b ?? "");
    if (!start || !end || start.length !== end.length) continue;
    family ??= start.length === 4 ? 4 : 6;
    if ((start.length === 4 ? 4 : 6) !== family) continue;
    let id = orgIds.get(org ?? "");
    if (id === undefined) {
      id = orgs.push(org ?? "") - 1;
      orgIds.set(org ?? "", id);
    }
    starts.push(toBig(start));
    ends.push(toBig(end));
    asns.push(Number(asn));
    orgIndex.push(id);
  }
  // The files are sorted; sort anyway so a hand-made file works.
  const order = starts.map((_, i) => i).sort((x, y) => (starts[x] < starts[y] ? -1 : starts[x] > starts[y] ? 1 : 0));
  const S = order.map((i) => starts[i]);
  const E = order.map((i) => ends[i]);
  const A = order.map((i) => asns[i]);
  const O = order.map((i) => orgIndex[i]);
  const bits = family === 6 ? 128 : 32;
  return {
    size: S.length,
    families: new Set<4 | 6>(family ? [family] : []),
    lookup(_ip: string, bytes: Uint8Array): GeoHit | null {
      if (bytes.length * 8 !== bits || S.length === 0) return null;
      const x = toBig(bytes);
      let lo = 0;
      let hi = S.length - 1;
      let found = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (S[mid] <= x) {
          found = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      if (found < 0 || x > E[found]) return null;
      const org = orgs[O[found]];
      return {
        info: { asn: Number.isFinite(A[found]) ? A[found] : undefined, asOrg: org || undefined },
        prefix: blockPrefix(x, S[found], E[found], bits),
      };
    },
  };
}

/** Shortest prefix whose aligned block around x lies inside [start, end]. */
export function blockPrefix(x: bigint, start: bigint, end: bigint, bits: number): number {
  const all = (1n << BigInt(bits)) - 1n;
  for (let k = 0; k <= bits; k++) {
    const hostMask = all >> BigInt(k);
    const block = x & ~hostMask & all;
    if (block >= start && (block | hostMask) <= end) return k;
  }
  return bits;
}
