/**
 * Canonical DNS names (RFC 4034 §6.1): lowercase, uncompressed, ordered label by label from the root, each label as
 * bytes where a shorter prefix sorts first. Pure.
 */

/** The labels of a wire name (uncompressed), as views into it. */
export function labelsOf(name: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let p = 0; name[p] !== 0; p += name[p] + 1) out.push(name.subarray(p + 1, p + 1 + name[p]));
  return out;
}

/** A wire name from labels. */
export function nameOf(labels: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(labels.reduce((n, l) => n + 1 + l.length, 1));
  let p = 0;
  for (const l of labels) {
    out[p++] = l.length;
    out.set(l, p);
    p += l.length;
  }
  return out;
}

/** The name with ASCII letters lowercased (a copy). */
export function lowerName(name: Uint8Array): Uint8Array {
  const out = new Uint8Array(name);
  for (let p = 0; out[p] !== 0; p += out[p] + 1)
    for (let i = p + 1; i <= p + out[p]; i++) if (out[i] >= 0x41 && out[i] <= 0x5a) out[i] += 32;
  return out;
}

function compareLabels(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** Canonical order of two lowercase wire names: negative, zero or positive. */
export function compareNames(a: Uint8Array, b: Uint8Array): number {
  const la = labelsOf(a);
  const lb = labelsOf(b);
  for (let i = 1; i <= Math.min(la.length, lb.length); i++) {
    const c = compareLabels(la[la.length - i], lb[lb.length - i]);
    if (c !== 0) return c;
  }
  return la.length - lb.length;
}

/** How many labels two names share from the root. */
export function commonLabels(a: Uint8Array, b: Uint8Array): number {
  const la = labelsOf(a);
  const lb = labelsOf(b);
  let n = 0;
  while (n < Math.min(la.length, lb.length) && compareLabels(la[la.length - 1 - n], lb[lb.length - 1 - n]) === 0) n++;
  return n;
}

/** Canonical order of RDATA (RFC 4034 §6.3): as unsigned bytes, a shorter prefix first. */
export function compareRdata(a: Uint8Array, b: Uint8Array): number {
  return compareLabels(a, b);
}
