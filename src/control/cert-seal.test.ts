import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCurve } from "@nats-io/nkeys";
import { describe, expect, it } from "vitest";
import { coversRecipients, loadOrCreateXkey, openCertificateKey, sealCertificate } from "./cert-seal.ts";

const KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";
const cert = { site: "www.example.org", serial: "0a", notAfter: 1, chainPem: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n", keyPem: KEY };

describe("sealed certificate keys", () => {
  it("each box opens its own copy, never another box's, and the record holds no plaintext key", () => {
    const issuer = createCurve();
    const [a, b] = [createCurve(), createCurve()];
    const record = sealCertificate(cert, { box: "issuer", kp: issuer }, new Map([["a", a.getPublicKey()], ["b", b.getPublicKey()]]));
    expect(JSON.stringify(record)).not.toContain("PRIVATE KEY");
    expect(openCertificateKey(record, "a", a)).toBe(KEY);
    expect(openCertificateKey(record, "b", b)).toBe(KEY);
    // b's key with a's copy: refused (sealed to another public key), and forced open it does not decrypt.
    expect(() => openCertificateKey(record, "a", b)).toThrow(/sealed to X.*not to this box's key/);
    expect(b.open(Buffer.from(record.keys.a!.sealed, "base64"), record.sender)).toBeNull();
    expect(() => openCertificateKey(record, "c", createCurve())).toThrow(/no key sealed for c/);
  });

  it("knows when a record already serves every box with this serial", () => {
    const issuer = createCurve();
    const a = createCurve().getPublicKey();
    const record = sealCertificate(cert, { box: "issuer", kp: issuer }, new Map([["a", a]]));
    expect(coversRecipients(record, "0a", new Map([["a", a]]))).toBe(true);
    expect(coversRecipients(record, "0b", new Map([["a", a]]))).toBe(false);
    expect(coversRecipients(record, "0a", new Map([["a", a], ["b", a]]))).toBe(false);
    expect(coversRecipients(record, "0a", new Map([["a", createCurve().getPublicKey()]]))).toBe(false);
  });

  it("makes a box's seed once (mode 0600) and reads it back", () => {
    const dir = mkdtempSync(join(tmpdir(), "parrot-xk-"));
    try {
      const path = join(dir, "run", "box.xk");
      const kp = loadOrCreateXkey(path);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(readFileSync(path, "utf8")).toMatch(/^SX/);
      expect(loadOrCreateXkey(path).getPublicKey()).toBe(kp.getPublicKey());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
