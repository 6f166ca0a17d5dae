import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { fixture } from "../../../test/support/dns-server.ts";
import { encodeName } from "../names.ts";
import { dsRdata, generateKeyPem, zoneKeyFromPem } from "./keys.ts";

describe("zone keys", () => {
  it("gives the DNSKEY, key tag and DS that ldns-key2ds computes for the same key", () => {
    const k = zoneKeyFromPem(fixture("dnssec-test-csk.pem"), "csk", true, "test");
    expect([k.flags, k.tag]).toEqual([257, 30496]);
    expect(Buffer.from(k.rdata.subarray(4)).toString("base64")).toBe(
      "bzLRDITQeVj0ratn+V6mZjry2lIbWOG5ENtarWATU7+IAikI/pHw10g08l7eEK3ljdQoUEe/xxD9e937YiRZjQ==",
    );
    expect(Buffer.from(dsRdata(encodeName("geo.example.org"), k)).toString("hex")).toBe(
      "77200d02473f27a6ebbe2dede25d78cf604c80921f9feb517261555bd4b0da639faa2167",
    );
    expect(k.sign(new Uint8Array(10))).toHaveLength(64);
  });

  it("makes new keys, and refuses keys that are not P-256 with the file named", () => {
    expect(zoneKeyFromPem(generateKeyPem(), "zsk", true, "new").flags).toBe(256);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs8", format: "pem" });
    expect(() => zoneKeyFromPem(rsa, "ksk", true, "rsa.pem")).toThrow("rsa.pem: an ECDSA P-256 key is needed (DNSSEC algorithm 13)");
    expect(() => zoneKeyFromPem("nope", "ksk", true, "bad.pem")).toThrow(/bad\.pem: not a PEM private key/);
  });
});
