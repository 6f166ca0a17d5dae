/**
 * Domain names as the answer core handles them: the lowercase text key of a question's name, names in wire form,
 * and whether a name lies inside the zone. Pure.
 */
import { asciiLower } from "./wire.ts";

const encoder = new TextEncoder();

/**
 * The question's name as lowercase dotted text (no trailing dot; "" for the root), or null when a label holds a byte
 * outside printable ASCII or a dot: such a name cannot be written in the zone file, so it is in no zone.
 */
export function textKey(question: Uint8Array): string | null {
  let key = "";
  let p = 0;
  for (;;) {
    const len = question[p++];
    if (len === 0) return key;
    if (p > 1) key += ".";
    for (const end = p + len; p < end; p++) {
      let b = question[p];
      if (b < 0x21 || b > 0x7e || b === 0x2e) return null;
      if (b >= 0x41 && b <= 0x5a) b += 32;
      key += String.fromCharCode(b);
    }
  }
}

/** A dotted name ("a.b.c", a trailing dot allowed; "" or "." is the root) in wire form, uncompressed, case kept. */
export function encodeName(name: string): Uint8Array {
  const text = name.endsWith(".") ? name.slice(0, -1) : name;
  if (text === "") return new Uint8Array([0]);
  const labels = text.split(".").map((l) => encoder.encode(l));
  const out = new Uint8Array(labels.reduce((n, l) => n + 1 + l.length, 1));
  let p = 0;
  for (const l of labels) {
    if (l.length === 0 || l.length > 63) throw new Error(`bad DNS name ${name}: empty or long label`);
    out[p++] = l.length;
    out.set(l, p);
    p += l.length;
  }
  if (out.length > 255) throw new Error(`bad DNS name ${name}: longer than 255 bytes`);
  return out;
}

/** Whether a lowercase key (as textKey gives) is the origin or below it. */
export function inZoneKey(key: string, origin: string, dotOrigin: string): boolean {
  return key === origin || key.endsWith(dotOrigin);
}

/** Whether raw labels (case as sent) end with the origin's lowercase labels. */
export function inZoneLabels(labels: string[], originLabels: string[]): boolean {
  if (labels.length < originLabels.length) return false;
  for (let i = 1; i <= originLabels.length; i++)
    if (asciiLower(labels[labels.length - i]) !== originLabels[originLabels.length - i]) return false;
  return true;
}
