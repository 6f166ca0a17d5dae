/**
 * Certificates through the fleet's bucket, their pure part: what the issuing box publishes and how a box opens it.
 * A certificate's private key never enters the bucket in the clear: the issuer seals it to each box's own curve key
 * (an nkeys xkey: X25519 key agreement, XSalsa20-Poly1305; a box's seed stays on the box), so the NATS servers, the
 * operators reading the bucket and every other box see only ciphertext, and a box opens only its own copy.
 *
 *   xkey.<box>   BoxXkey        the box's public curve key (each box writes its own; its credentials allow no other)
 *   cert.<site>  CertRecord     the chain, the issuer's public curve key, and the key sealed once per box
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { createCurve, fromCurveSeed, fromPublic, type KeyPair } from "@nats-io/nkeys";
import { z } from "zod";
import { nameToken } from "./messages.ts";

const boxName = z.string().regex(/^[A-Za-z0-9._-]+$/).max(200);
const xkeyPublic = z.string().regex(/^X[A-Z2-7]{55}$/, "a public curve key (X…, 56 characters)");

export const BoxXkeySchema = z.object({ v: z.literal(1), box: boxName, xkey: xkeyPublic, at: z.number() }).strict();
export type BoxXkey = z.infer<typeof BoxXkeySchema>;

export const CertRecordSchema = z
  .object({
    v: z.literal(1),
    site: z.string().min(1).max(253),
    serial: z.string(),
    not_after: z.number(),
    /** The leaf first, then its issuers (PEM): public. */
    chain: z.string().includes("-----BEGIN CERTIFICATE-----"),
    /** The box that issued it and its public curve key (the sender every box opens with). */
    issuer: boxName,
    sender: xkeyPublic,
    /** Per box: the public key it was sealed to, and the sealed key PEM (base64). */
    keys: z.record(boxName, z.object({ xkey: xkeyPublic, sealed: z.string() }).strict()),
    at: z.number(),
  })
  .strict();
export type CertRecord = z.infer<typeof CertRecordSchema>;

export const certKeys = {
  xkey: (box: string) => `xkey.${nameToken(box)}`,
  cert: (site: string) => `cert.${nameToken(site)}`,
};

/** A box's curve key pair from its seed file, made (mode 0600) when there is none yet. */
export function loadOrCreateXkey(path: string): KeyPair {
  if (existsSync(path)) {
    try {
      return fromCurveSeed(new TextEncoder().encode(readFileSync(path, "utf8").trim()));
    } catch (err) {
      throw new Error(`${path}: not a curve seed (SX…): ${(err as Error).message}; remove it to make a new one`);
    }
  }
  const kp = createCurve();
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const aside = `${path}.${process.pid}.tmp`;
  writeFileSync(aside, new TextDecoder().decode(kp.getSeed()) + "\n", { mode: 0o600 });
  renameSync(aside, path);
  return kp;
}

/** The record the issuer publishes: the chain as it is, the key sealed to each recipient's public curve key. */
export function sealCertificate(
  cert: { site: string; serial: string; notAfter: number; chainPem: string; keyPem: string },
  issuer: { box: string; kp: KeyPair },
  recipients: ReadonlyMap<string, string>,
  now = Date.now(),
): CertRecord {
  const key = new TextEncoder().encode(cert.keyPem);
  const keys: CertRecord["keys"] = {};
  for (const [box, xkey] of recipients) keys[box] = { xkey, sealed: Buffer.from(issuer.kp.seal(key, xkey)).toString("base64") };
  return { v: 1, site: cert.site, serial: cert.serial, not_after: cert.notAfter, chain: cert.chainPem, issuer: issuer.box, sender: issuer.kp.getPublicKey(), keys, at: now };
}

/** The key PEM sealed for `box`, opened with its key pair; throws saying why when there is none or it does not open. */
export function openCertificateKey(record: CertRecord, box: string, kp: KeyPair): string {
  const mine = record.keys[box];
  if (!mine) throw new Error(`no key sealed for ${box} (the issuer ${record.issuer} seals to a box once it has seen its public key)`);
  if (mine.xkey !== kp.getPublicKey()) throw new Error(`the key was sealed to ${mine.xkey}, not to this box's key ${kp.getPublicKey()} (a new key: the issuer seals again once it sees it)`);
  fromPublic(record.sender); // a well-formed sender, or throws
  const opened = kp.open(Buffer.from(mine.sealed, "base64"), record.sender);
  if (!opened) throw new Error(`the key sealed for ${box} does not open with this box's key and the sender ${record.sender}`);
  return new TextDecoder().decode(opened);
}

/** Whether `record` already gives every recipient the key sealed to its current public key, for this serial. */
export function coversRecipients(record: CertRecord | undefined, serial: string, recipients: ReadonlyMap<string, string>): boolean {
  if (!record || record.serial !== serial) return false;
  for (const [box, xkey] of recipients) if (record.keys[box]?.xkey !== xkey) return false;
  return true;
}
