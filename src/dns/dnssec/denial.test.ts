import { describe, expect, it } from "vitest";
import { TYPE } from "../codes.ts";
import { encodeName } from "../names.ts";
import { compareNames, labelsOf, nameOf } from "./canonical.ts";
import { closestEncloser, cover, nodataNsec, nxdomainNsecs, typeBitmap, type ExistingNames, type Nsec } from "./denial.ts";

const ZONE = ["geo.example.org", "www.geo.example.org", "ns1.geo.example.org", "deep.geo.example.org", "b.deep.geo.example.org",
  "a.b.deep.geo.example.org", "director.geo.example.org", "mail.geo.example.org", "z.geo.example.org", "-.geo.example.org"];
const sorted = ZONE.map((n) => encodeName(n)).sort(compareNames);
const key = (n: Uint8Array) => Buffer.from(n).toString("latin1");
const existing: ExistingNames = { sorted, types: (n) => (key(n) === key(encodeName("www.geo.example.org")) ? [TYPE.CNAME] : []) };
const has = new Set(sorted.map(key));
const exists = (n: Uint8Array) => has.has(key(n));

/** Whether the NSEC's span holds `name`. */
function covers(n: Nsec, name: Uint8Array): boolean {
  const wraps = compareNames(n.next, n.owner) <= 0;
  return compareNames(n.owner, name) < 0 && (wraps || compareNames(name, n.next) < 0);
}

/** No existing name lies strictly inside the span (a span may start at an existing owner). */
function truthful(n: Nsec): boolean {
  return sorted.every((e) => !covers(n, e));
}

describe("authenticated denial", () => {
  it("encodes type bitmaps as RFC 4034 §4.3 shows", () => {
    const hex = Buffer.from(typeBitmap([TYPE.A, TYPE.MX, TYPE.RRSIG, TYPE.NSEC, 1234])).toString("hex");
    expect(hex).toBe("000640010000000304" + "1b" + "00".repeat(26) + "20");
  });

  it("proves NODATA with an NSEC at the name and nothing in its span", () => {
    const n = nodataNsec(encodeName("www.geo.example.org"), existing);
    expect(n.types).toEqual([TYPE.CNAME]);
    expect(labelsOf(n.next)[0]).toEqual(Uint8Array.of(0));
    expect(truthful(n)).toBe(true);
  });

  it("finds the closest encloser and the next-closer name", () => {
    const { encloser, nextCloser } = closestEncloser(encodeName("x.y.b.deep.geo.example.org"), exists);
    expect([key(encloser), key(nextCloser)]).toEqual([key(encodeName("b.deep.geo.example.org")), key(encodeName("y.b.deep.geo.example.org"))]);
  });

  it("proves a wildcard answer's next-closer name absent with a truthful span that leaves the wildcard out", () => {
    const zone = ["geo.example.org", "cdn.geo.example.org", "*.cdn.geo.example.org", "!.cdn.geo.example.org", "+.cdn.geo.example.org",
      "a.cdn.geo.example.org", "0.cdn.geo.example.org", "x.a.cdn.geo.example.org"].map((n) => encodeName(n)).sort(compareNames);
    const wild: ExistingNames = { sorted: zone, types: () => [] };
    const wildcard = encodeName("*.cdn.geo.example.org");
    for (const label of ["b", "*x", ")", "+a", "-", "\x00", "a0", "z", "x".repeat(63), "\xff"]) {
      const nextCloser = nameOf([Uint8Array.from(label, (c) => c.charCodeAt(0)), ...labelsOf(encodeName("cdn.geo.example.org"))]);
      const n = cover(nextCloser, wild);
      expect(covers(n, nextCloser), JSON.stringify(label)).toBe(true);
      expect(zone.every((e) => !covers(n, e)), `${JSON.stringify(label)}: ${key(n.owner)} → ${key(n.next)}`).toBe(true);
      expect(covers(n, wildcard)).toBe(false);
    }
  });

  it("covers every kind of missing name with truthful spans, the name and the wildcard at its closest encloser", () => {
    const odd = [
      "nope", "a", "zz", "z0", "[", "@", "\x00", "ab\x00", "x\xff", "\xff", "A".toLowerCase(), "x".repeat(63), `${"y".repeat(62)}\x00`,
      "*", "*x", ")", "c.nope", "q.a.b.deep", "deeper.deep", "director0", "directorz", "www-", "-a",
    ];
    const names = [...odd.map((l) => `${l}.geo.example.org`), "x.y.z.w.deep.geo.example.org", `${"m".repeat(63)}.${"n".repeat(63)}.${"o".repeat(63)}.geo.example.org`];
    for (const text of names) {
      const labels = text.split(".").slice(0, -3).map((l) => Uint8Array.from(l, (c) => c.charCodeAt(0)));
      const name = nameOf([...labels, ...labelsOf(encodeName("geo.example.org"))]);
      const nsecs = nxdomainNsecs(name, existing, exists);
      for (const n of nsecs) expect(truthful(n), `${JSON.stringify(text)}: ${key(n.owner)} → ${key(n.next)}`).toBe(true);
      expect(covers(nsecs[0]!, name), JSON.stringify(text)).toBe(true);
      const { encloser } = closestEncloser(name, exists);
      const wildcard = nameOf([Uint8Array.of(0x2a), ...labelsOf(encloser)]);
      expect(nsecs.some((n) => covers(n, wildcard)), JSON.stringify(text)).toBe(true);
      for (const n of nsecs) expect(n.owner.length).toBeLessThanOrEqual(255);
    }
  });
});
