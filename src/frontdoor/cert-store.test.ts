import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CertDirectory, chainCertificates, combinedPem, coversNames, inspectPair, splitPem } from "./cert-store.ts";
import { ensureLocalCa, issueLocalCertificate, placeholderCertificate } from "./local-ca.ts";

const dir = mkdtempSync(join(tmpdir(), "parrot-certs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("certificate pairs", () => {
  it("reads a local CA's certificate: names, validity, chain, and a key that belongs to it", async () => {
    const ca = await ensureLocalCa(dir);
    const pair = await issueLocalCertificate(ca, ["www.example.org", "*.cdn.example.org"], 90);
    const info = inspectPair(pair);
    expect(info.names).toEqual(["www.example.org", "*.cdn.example.org"]);
    expect(info.notAfter - info.notBefore).toBe(90 * 86_400_000);
    expect(chainCertificates(pair.chainPem)).toHaveLength(2);
    // The chain's second certificate is the CA, which signed the leaf.
    const [leaf, issuer] = chainCertificates(pair.chainPem).map((p) => new X509Certificate(p));
    expect(leaf!.verify(issuer!.publicKey)).toBe(true);
    expect(issuer!.ca).toBe(true);
    // A second run keeps the same CA.
    expect(readFileSync((await ensureLocalCa(dir)).certPath, "utf8")).toBe(readFileSync(ca.certPath, "utf8"));
  });

  it("refuses a key that does not belong to the certificate, and files without both parts", async () => {
    const a = await placeholderCertificate(["a.example"]);
    const b = await placeholderCertificate(["b.example"]);
    expect(() => inspectPair({ chainPem: a.chainPem, keyPem: b.keyPem })).toThrow("the private key does not belong to the certificate");
    expect(() => splitPem(a.chainPem)).toThrow("no private key in the PEM text");
    expect(() => splitPem(a.keyPem)).toThrow("no certificate in the PEM text");
    expect(() => splitPem(a.chainPem + a.keyPem + b.keyPem)).toThrow("more than one private key");
    expect(() => inspectPair({ chainPem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", keyPem: a.keyPem })).toThrow(
      /the certificate does not parse/,
    );
    // The combined form HAProxy loads splits back into the same pair.
    expect(splitPem(combinedPem(a))).toEqual({ chainPem: a.chainPem.trim() + "\n", keyPem: a.keyPem.trim() + "\n" });
  });

  it("checks that a certificate covers the site's names (a wildcard covers one label)", () => {
    expect(coversNames(["www.example.org", "example.org"], ["example.org", "WWW.example.org"])).toBe(true);
    expect(coversNames(["*.example.org"], ["www.example.org"])).toBe(true);
    expect(coversNames(["*.example.org"], ["a.b.example.org"])).toBe(false);
    expect(coversNames(["*.example.org"], ["example.org"])).toBe(false);
    expect(coversNames(["www.example.org"], ["*.example.org"])).toBe(false);
    expect(coversNames(["*.example.org"], ["*.example.org"])).toBe(true);
  });
});

describe("the certificate directory", () => {
  it("writes a site's pair atomically, mode 0600, and reads it back", async () => {
    const certs = new CertDirectory(join(dir, "shared"));
    const pair = await placeholderCertificate(["x.example"]);
    expect(certs.read("x.example")).toBeUndefined();
    expect(certs.stamp("x.example")).toBeNull();
    certs.write("x.example", pair);
    expect(statSync(certs.path("x.example")).mode & 0o777).toBe(0o600);
    expect(inspectPair(certs.read("x.example")!).names).toEqual(["x.example"]);
    const before = certs.stamp("x.example");
    certs.write("x.example", await placeholderCertificate(["x.example"]));
    expect(certs.stamp("x.example")).not.toBe(before);
    writeFileSync(certs.path("x.example"), "garbage");
    expect(() => certs.read("x.example")).toThrow("no certificate in the PEM text");
  });
});
