import { createPublicKey, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { fixture } from "../../../test/support/dns-server.ts";
import { TYPE } from "../codes.ts";
import { encodeName } from "../names.ts";
import { rrTail } from "../records.ts";
import { generateKeyPem, zoneKeyFromPem } from "./keys.ts";
import { ZoneSigner } from "./sign.ts";

const pem = fixture("dnssec-test-csk.pem");
const owner = encodeName("director.geo.example.org");
const a = (n: number) => Uint8Array.from([192, 0, 2, n]);

/** Verifies an RRSIG tail independently: the RDATA head, then each record in canonical order (RFC 4034 §3.1.8.1). */
function verifies(rrsig: Uint8Array, rdatas: Uint8Array[], ttl: number): boolean {
  const rdata = rrsig.subarray(10);
  const head = rdata.subarray(0, rdata.length - 64);
  const records = [...rdatas].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  const data = Buffer.concat([head, ...records.flatMap((r) => [owner, rrTail(TYPE.A, ttl, r)])]);
  return verify("sha256", data, { key: createPublicKey(pem), dsaEncoding: "ieee-p1363" }, rdata.subarray(rdata.length - 64));
}

describe("signing", () => {
  it("signs an RRset in canonical order whatever order it comes in", () => {
    const s = new ZoneSigner(encodeName("geo.example.org"), [zoneKeyFromPem(pem, "csk", true, "t")], 14 * 86400, () => Date.UTC(2026, 10, 20));
    const [sig] = s.rrsigs(owner, TYPE.A, 30, [a(2), a(1)]);
    expect(verifies(sig!, [a(1), a(2)], 30)).toBe(true);
    expect(verifies(sig!, [a(1), a(3)], 30)).toBe(false);
    const v = new DataView(sig!.buffer, sig!.byteOffset + 10);
    expect([v.getUint16(0), sig![12], sig![13], v.getUint32(4), v.getUint16(16)]).toEqual([TYPE.A, 13, 4, 30, 30496]);
    expect(v.getUint32(8) - v.getUint32(12)).toBe(14 * 86400 + 3600); // expiration − inception
  });

  it("signs the DNSKEY set with KSKs only and the rest with ZSKs only; published keys do not sign", () => {
    const ksk = zoneKeyFromPem(generateKeyPem(), "ksk", true, "ksk");
    const zsk = zoneKeyFromPem(generateKeyPem(), "zsk", true, "zsk");
    const next = zoneKeyFromPem(generateKeyPem(), "zsk", false, "next zsk");
    const s = new ZoneSigner(encodeName("geo.example.org"), [ksk, zsk, next], 86400);
    const tag = (t: Uint8Array) => (t[26] << 8) | t[27];
    expect(s.rrsigs(encodeName("geo.example.org"), TYPE.DNSKEY, 3600, [ksk.rdata, zsk.rdata, next.rdata]).map(tag)).toEqual([ksk.tag]);
    expect(s.rrsigs(owner, TYPE.A, 30, [a(1)]).map(tag)).toEqual([zsk.tag]);
  });

  it("keeps a window for half the validity, so cached signatures are made anew in time", () => {
    let now = Date.UTC(2026, 0, 1);
    const s = new ZoneSigner(encodeName("z"), [zoneKeyFromPem(pem, "csk", true, "t")], 86400, () => now);
    const w = s.window();
    now += 43_199_000;
    expect(s.window()).toBe(w);
    now += 1000;
    expect(s.window()).toBe(w + 43200);
  });
});
