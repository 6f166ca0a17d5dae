/**
 * ip-location-db's ASN CSV ("start,end,asn,organisation", text addresses, one family per file) as a sorted range
 * table with binary search: the embedded AS data, which that project ships as CSV only.
 *
 * Compact: addresses live in Uint32Array columns (one word per IPv4 address, four per IPv6 address), AS numbers and
 * organisation indexes in Uint32Arrays, each organisation name once. The CSV is read from bytes in one pass without
 * per-line strings or arrays (a line in an unexpected shape goes through the general CSV/IP parsers instead).
 */
import { parseIp } from "../net/ip.ts";
import type { GeoHit, GeoSource } from "./types.ts";

/** AS number column value for "no number". */
const NO_ASN = 0xffffffff;

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

/** Growable Uint32Array. */
class U32 {
  a = new Uint32Array(1024);
  n = 0;
  push(v: number) {
    if (this.n === this.a.length) {
      const b = new Uint32Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
  done(): Uint32Array {
    return this.a.slice(0, this.n);
  }
}

const COMMA = 0x2c;
const QUOTE = 0x22;
const NL = 0x0a;
const CR = 0x0d;

/** Dotted-quad IPv4 in bytes [s, e) as an unsigned number; -1 unless plain (the general parser then decides). */
function fastIPv4(b: Uint8Array, s: number, e: number): number {
  let n = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = s; i < e; i++) {
    const c = b[i];
    if (c >= 0x30 && c <= 0x39) {
      if (digits === 1 && part === 0) return -1; // leading zero
      part = part * 10 + (c - 0x30);
      if (++digits > 3 || part > 255) return -1;
    } else if (c === 0x2e) {
      if (digits === 0 || ++parts > 3) return -1;
      n = n * 256 + part;
      part = digits = 0;
    } else return -1;
  }
  if (digits === 0 || parts !== 3) return -1;
  return n * 256 + part;
}

/** Plain IPv6 text (hex groups, at most one "::", no IPv4 tail) in bytes [s, e) into out[o..o+3]; false otherwise. */
function fastIPv6(b: Uint8Array, s: number, e: number, out: Uint32Array, o: number): boolean {
  const groups = fastGroups;
  let count = 0;
  let gap = -1;
  let i = s;
  if (e - s >= 2 && b[s] === 0x3a && b[s + 1] === 0x3a) {
    gap = 0;
    i = s + 2;
    if (i === e) {
      out.fill(0, o, o + 4);
      return true;
    }
  }
  for (;;) {
    let v = 0;
    let digits = 0;
    while (i < e) {
      const c = b[i];
      const h = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 87 : c >= 0x41 && c <= 0x46 ? c - 55 : -1;
      if (h < 0) break;
      v = v * 16 + h;
      if (++digits > 4) return false;
      i++;
    }
    if (digits === 0 || count === 8) return false;
    groups[count++] = v;
    if (i === e) break;
    if (b[i] !== 0x3a) return false;
    i++;
    if (i < e && b[i] === 0x3a) {
      if (gap >= 0) return false;
      gap = count;
      i++;
      if (i === e) break;
    } else if (i === e) return false;
  }
  if (gap < 0 ? count !== 8 : count > 7) return false;
  const missing = 8 - count;
  for (let w = 0; w < 4; w++) {
    const g = (k: number) => (gap < 0 || k < gap ? groups[k] : k < gap + missing ? 0 : groups[k - missing]);
    out[o + w] = ((g(2 * w) << 16) | g(2 * w + 1)) >>> 0;
  }
  return true;
}
const fastGroups = new Array<number>(8).fill(0);

/** Address bytes → words (IPv4: 1, IPv6: 4). */
function toWords(bytes: Uint8Array, out: Uint32Array, o: number): void {
  for (let w = 0; w < bytes.length / 4; w++)
    out[o + w] = ((bytes[4 * w] << 24) | (bytes[4 * w + 1] << 16) | (bytes[4 * w + 2] << 8) | bytes[4 * w + 3]) >>> 0;
}

/** Compares address a (words at i·W) with b (words at j·W). */
function cmp(A: Uint32Array, i: number, B: Uint32Array, j: number, W: number): number {
  for (let w = 0; w < W; w++) {
    const x = A[i * W + w];
    const y = B[j * W + w];
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** The parsed table: W words per address; row i's start at S[i·W], end at E[i·W]; AS number and organisation index. */
interface AsnTable {
  family: 4 | 6 | undefined;
  W: number;
  S: Uint32Array;
  E: Uint32Array;
  A: Uint32Array;
  O: Uint32Array;
  orgs: string[];
}

/** Builds an ASN source from CSV text or bytes (UTF-8) of one family; malformed lines are skipped. */
export function asnCsvSource(input: string | Uint8Array): GeoSource & { size: number } {
  // Parsed in a function of its own: the lookup closure must not keep the CSV bytes or the parse maps alive.
  const { family, W, S, E, A, O, orgs } = parseAsnCsv(typeof input === "string" ? new TextEncoder().encode(input) : input);
  const n = A.length;
  const bits = family === 6 ? 128 : 32;
  const x = new Uint32Array(4);
  return {
    size: n,
    families: new Set<4 | 6>(family ? [family] : []),
    lookup(_ip: string, bytes: Uint8Array): GeoHit | null {
      if (bytes.length * 8 !== bits || n === 0) return null;
      toWords(bytes, x, 0);
      let lo = 0;
      let hi = n - 1;
      let found = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (cmp(S, mid, x, 0, W) <= 0) {
          found = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      if (found < 0 || cmp(x, 0, E, found, W) > 0) return null;
      const org = orgs[O[found]];
      const big = (A: Uint32Array, i: number) => {
        let v = 0n;
        for (let w = 0; w < W; w++) v = (v << 32n) | BigInt(A[i * W + w]);
        return v;
      };
      return {
        info: { asn: A[found] === NO_ASN ? undefined : A[found], asOrg: org || undefined },
        prefix: W === 1 ? blockPrefix32(x[0], S[found], E[found]) : blockPrefix(big(x, 0), big(S, found), big(E, found), bits),
      };
    },
  };
}

function parseAsnCsv(b: Uint8Array): AsnTable {
  const utf8 = new TextDecoder();
  let family: 4 | 6 | undefined;
  let W = 1;
  const starts = new U32();
  const ends = new U32();
  const asns = new U32();
  const orgIndex = new U32();
  const orgs: string[] = [];
  const orgIds = new Map<string, number>();
  /** Per AS number: the last organisation id and where its bytes were, to skip decoding repeats. */
  const lastOrg = new Map<number, { id: number; s: number; e: number }>();
  const word = new Uint32Array(8);
  const orgId = (org: string) => {
    let id = orgIds.get(org);
    if (id === undefined) {
      id = orgs.push(org) - 1;
      orgIds.set(org, id);
    }
    return id;
  };

  /** The general path for a line the fast path does not handle. */
  const slowLine = (s: number, e: number) => {
    const [a, z, asn, org] = splitCsvLine(utf8.decode(b.subarray(s, e)));
    const start = parseIp(a ?? "");
    const end = parseIp(z ?? "");
    if (!start || !end || start.length !== end.length) return;
    family ??= start.length === 4 ? 4 : 6;
    W = family === 4 ? 1 : 4;
    if ((start.length === 4 ? 4 : 6) !== family) return;
    toWords(start, word, 0);
    toWords(end, word, 4);
    for (let w = 0; w < W; w++) starts.push(word[w]);
    for (let w = 0; w < W; w++) ends.push(word[4 + w]);
    asns.push(/^\d+$/.test(asn ?? "") && Number(asn) < NO_ASN ? Number(asn) : NO_ASN);
    orgIndex.push(orgId(org ?? ""));
  };

  for (let p = 0; p < b.length; ) {
    let eol = b.indexOf(NL, p);
    if (eol < 0) eol = b.length;
    let e = eol;
    if (e > p && b[e - 1] === CR) e--;
    const s = p;
    p = eol + 1;
    if (e === s) continue;
    // Fast path: start,end,asn,org with the first three unquoted.
    const c1 = b.indexOf(COMMA, s);
    const c2 = c1 < 0 || c1 >= e ? -1 : b.indexOf(COMMA, c1 + 1);
    const c3 = c2 < 0 || c2 >= e ? -1 : b.indexOf(COMMA, c2 + 1);
    if (c3 < 0 || c3 >= e || b[s] === QUOTE) {
      slowLine(s, e);
      continue;
    }
    let ok: boolean;
    if (family === undefined || family === 4) {
      const x = fastIPv4(b, s, c1);
      const y = x < 0 ? -1 : fastIPv4(b, c1 + 1, c2);
      ok = y >= 0;
      if (ok) {
        family = 4;
        word[0] = x;
        word[4] = y;
      }
    } else ok = fastIPv6(b, s, c1, word, 0) && fastIPv6(b, c1 + 1, c2, word, 4);
    if (!ok && family === undefined) {
      ok = fastIPv6(b, s, c1, word, 0) && fastIPv6(b, c1 + 1, c2, word, 4);
      if (ok) {
        family = 6;
        W = 4;
      }
    }
    let asn = 0;
    for (let i = c2 + 1; i < c3 && ok; i++) {
      const d = b[i] - 0x30;
      if (d < 0 || d > 9) ok = false;
      else asn = asn * 10 + d;
    }
    if (!ok || c3 === c2 + 1 || asn >= NO_ASN) {
      slowLine(s, e);
      continue;
    }
    // The organisation: reuse the AS number's last one when the bytes match, else decode (unquoting if needed).
    const os = c3 + 1;
    let id = -1;
    const last = lastOrg.get(asn);
    if (last && last.e - last.s === e - os) {
      let same = true;
      for (let i = 0; i < e - os && same; i++) same = b[last.s + i] === b[os + i];
      if (same) id = last.id;
    }
    if (id < 0) {
      let oe = b.indexOf(COMMA, os);
      if (oe < 0 || oe > e) oe = e;
      const raw = b[os] === QUOTE ? splitCsvLine(utf8.decode(b.subarray(os, e)))[0] : utf8.decode(b.subarray(os, oe));
      id = orgId(raw);
      lastOrg.set(asn, { id, s: os, e });
    }
    for (let w = 0; w < W; w++) starts.push(word[w]);
    for (let w = 0; w < W; w++) ends.push(word[4 + w]);
    asns.push(asn);
    orgIndex.push(id);
  }

  let S = starts.done();
  let E = ends.done();
  let A = asns.done();
  let O = orgIndex.done();
  const n = A.length;
  // The files are sorted; sort anyway so a hand-made file works.
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) sorted = cmp(S, i - 1, S, i, W) <= 0;
  if (!sorted) {
    const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => cmp(S, i, S, j, W));
    const pick = (src: Uint32Array, width: number) => {
      const out = new Uint32Array(src.length);
      order.forEach((from, to) => out.set(src.subarray(from * width, from * width + width), to * width));
      return out;
    };
    S = pick(S, W);
    E = pick(E, W);
    A = pick(A, 1);
    O = pick(O, 1);
  }
  return { family, W, S, E, A, O, orgs };
}

/** blockPrefix for IPv4 in plain numbers. */
function blockPrefix32(x: number, start: number, end: number): number {
  for (let k = 0; k <= 32; k++) {
    const size = 2 ** (32 - k);
    const block = Math.floor(x / size) * size;
    if (block >= start && block + size - 1 <= end) return k;
  }
  return 32;
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
