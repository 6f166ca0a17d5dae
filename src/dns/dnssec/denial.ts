/**
 * Authenticated denial with minimally covering NSEC records (RFC 4470 "white lies"), made on demand: NODATA is an
 * NSEC at the name itself listing its types, with the next name `\000.<name>` (nothing lies between); NXDOMAIN keeps
 * its RCODE and gets two NSECs whose spans hold no existing name — one around the next-closer name's whole subtree,
 * one around the wildcard of the closest encloser. Spans are built from the name's neighbours in canonical order
 * (a label one step smaller with 0xff appended, the label with 0x00 appended), and fall back to the real existing
 * neighbours where such a name cannot be made, so no NSEC ever denies a name that exists (resolvers cache and reuse
 * NSEC spans, RFC 8198). Pure.
 */
import { TYPE } from "../codes.ts";
import { rrTail } from "../records.ts";
import { commonLabels, compareNames, labelsOf, nameOf } from "./canonical.ts";

/** The zone's existing names in canonical order, and their types. */
export interface ExistingNames {
  sorted: Uint8Array[];
  types(name: Uint8Array): number[];
}

/** RFC 4034 §4.1.2: the type bitmap of an NSEC. */
export function typeBitmap(types: number[]): Uint8Array {
  const windows = new Map<number, Uint8Array>();
  for (const t of [...new Set(types)].sort((a, b) => a - b)) {
    let w = windows.get(t >> 8);
    if (!w) windows.set(t >> 8, (w = new Uint8Array(32)));
    w[(t & 0xff) >> 3] |= 0x80 >> (t & 7);
  }
  const parts: number[] = [];
  for (const [n, bits] of [...windows].sort((a, b) => a[0] - b[0])) {
    let len = 32;
    while (len > 0 && bits[len - 1] === 0) len--;
    parts.push(n, len, ...bits.subarray(0, len));
  }
  return Uint8Array.from(parts);
}

/** An NSEC tail: next name (lowercase, uncompressed) and the types at the owner (RRSIG and NSEC added). */
export function nsecTail(next: Uint8Array, types: number[], ttl: number): Uint8Array {
  const bitmap = typeBitmap([...types, TYPE.RRSIG, TYPE.NSEC]);
  const rdata = new Uint8Array(next.length + bitmap.length);
  rdata.set(next, 0);
  rdata.set(bitmap, next.length);
  return rrTail(TYPE.NSEC, ttl, rdata);
}

/** One NSEC to send: owner (lowercase wire), next, and the types at the owner. */
export interface Nsec {
  owner: Uint8Array;
  next: Uint8Array;
  types: number[];
}

const nameLength = (labels: Uint8Array[]) => labels.reduce((n, l) => n + 1 + l.length, 1);
const concat = (a: Uint8Array, b: number[]) => Uint8Array.from([...a, ...b]);

/** NODATA at an existing name: the name, the next possible name below it, its types. */
export function nodataNsec(name: Uint8Array, existing: ExistingNames): Nsec {
  const labels = labelsOf(name);
  const child = [Uint8Array.of(0), ...labels];
  const next = nameLength(child) <= 255 ? nameOf(child) : (successorOf(labels, existing) ?? existing.sorted[0]);
  return { owner: name, next, types: existing.types(name) };
}

/** The closest existing ancestor of a name that does not exist, and the next-closer name (one label below it). */
export function closestEncloser(name: Uint8Array, exists: (n: Uint8Array) => boolean): { encloser: Uint8Array; nextCloser: Uint8Array } {
  const labels = labelsOf(name);
  for (let i = 1; i < labels.length; i++) {
    const up = nameOf(labels.slice(i));
    if (exists(up)) return { encloser: up, nextCloser: nameOf(labels.slice(i - 1)) };
  }
  return { encloser: nameOf([]), nextCloser: nameOf(labels.slice(-1)) };
}

/**
 * NXDOMAIN for `name` (below the zone's origin, not existing): the NSEC covering the next-closer name's subtree and,
 * unless that one covers it too, the NSEC covering the wildcard at the closest encloser a resolver derives from it.
 */
export function nxdomainNsecs(name: Uint8Array, existing: ExistingNames, exists: (n: Uint8Array) => boolean): Nsec[] {
  const { nextCloser } = closestEncloser(name, exists);
  const first = cover(nextCloser, existing);
  // Resolvers take the closest encloser from this NSEC: the longer common ancestor of the name with its two ends.
  const shared = Math.max(commonLabels(first.owner, name), commonLabels(first.next, name));
  const labels = labelsOf(name);
  const wildcard = nameOf([Uint8Array.of(0x2a), ...labels.slice(labels.length - shared)]);
  if (covers(first, wildcard)) return [first];
  return [first, cover(wildcard, existing)];
}

/** Whether an NSEC's span holds a name (owner < name < next, or past the owner when next wraps to the apex). */
function covers(n: Nsec, name: Uint8Array): boolean {
  const after = compareNames(n.owner, name) < 0;
  const wraps = compareNames(n.next, n.owner) <= 0;
  return wraps ? after : after && compareNames(name, n.next) < 0;
}

/**
 * The NSEC covering `name` (which does not exist, nor anything below it, while its parent does): from just before
 * it to just past its subtree, or from/to the real existing neighbours when those are closer.
 */
export function cover(name: Uint8Array, existing: ExistingNames): Nsec {
  const labels = labelsOf(name);
  const [first, ...parent] = labels;
  // The greatest existing name before `name`, and the least one after its subtree.
  const before = predecessorOf(name, existing);
  const after = successorOf(labels, existing);
  let owner: Uint8Array | undefined;
  const pred = predecessorLabel(first, 255 - nameLength(parent));
  if (pred) owner = nameOf([pred, ...parent]);
  if (!owner || (before && compareNames(before, owner) >= 0)) owner = before ?? existing.sorted[0];
  let next: Uint8Array | undefined;
  const succ = successorLabel(first, 255 - nameLength(parent));
  if (succ) next = nameOf([succ, ...parent]);
  if (!next || (after && compareNames(after, next) <= 0)) next = after ?? existing.sorted[0];
  const ownerExists = existing.sorted.some((n) => compareNames(n, owner) === 0);
  return { owner, next, types: ownerExists ? existing.types(owner) : [] };
}

/** A label just before `l` whose own subtree cannot hold an existing name; null when none fits. */
function predecessorLabel(l: Uint8Array, room: number): Uint8Array | null {
  const last = l[l.length - 1];
  if (last === 0) return null;
  let dec = last - 1;
  if (dec >= 0x41 && dec <= 0x5a) dec = 0x40; // below 'A': uppercase sorts as lowercase
  // 0xff after it: only names with 0xff bytes (none in a zone of printable names) lie between it and `l`.
  const withFill = l.length < 63 && l.length + 2 <= room;
  if (!withFill && l.length + 1 > room) return null;
  return concat(l.subarray(0, l.length - 1), withFill ? [dec, 0xff] : [dec]);
}

/** A label just after `l` and its whole subtree; null when none fits. */
function successorLabel(l: Uint8Array, room: number): Uint8Array | null {
  if (l.length < 63 && l.length + 2 <= room) return concat(l, [0]);
  const last = l[l.length - 1];
  if (last === 0xff || l.length + 1 > room) return null;
  let inc = last + 1;
  if (inc >= 0x41 && inc <= 0x5a) inc = 0x5b; // past 'Z': uppercase sorts as lowercase
  return concat(l.subarray(0, l.length - 1), [inc]);
}

/** The greatest existing name before `name`. */
function predecessorOf(name: Uint8Array, existing: ExistingNames): Uint8Array | undefined {
  let lo = 0;
  let hi = existing.sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareNames(existing.sorted[mid], name) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 ? existing.sorted[lo - 1] : undefined;
}

/** The least existing name after the subtree of `labels`. */
function successorOf(labels: Uint8Array[], existing: ExistingNames): Uint8Array | undefined {
  const name = nameOf(labels);
  for (const n of existing.sorted) {
    if (compareNames(n, name) <= 0) continue;
    const nl = labelsOf(n);
    if (commonLabels(n, name) === labels.length && nl.length > labels.length) continue; // inside the subtree
    return n;
  }
  return undefined;
}
