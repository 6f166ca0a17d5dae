/**
 * DNSSEC zone keys: ECDSA P-256 with SHA-256 (algorithm 13, RFC 6605) from PEM files, as KSK, ZSK or CSK; their
 * DNSKEY RDATA, key tag (RFC 4034 Appendix B) and DS (SHA-256, RFC 4509). Signing is node:crypto's ECDSA with the
 * raw r‖s encoding DNSSEC uses ("ieee-p1363").
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from "node:crypto";

export const ALGORITHM_ECDSAP256SHA256 = 13;
export const DIGEST_SHA256 = 2;

/** KSK: signs the DNSKEY set, its DS is at the parent; ZSK: signs everything else; CSK: both. */
export type KeyRole = "ksk" | "zsk" | "csk";

export interface ZoneKey {
  role: KeyRole;
  /** Signs (true) or is only published in the DNSKEY set (rollover: pre-publish, or retire). */
  active: boolean;
  /** 257 (SEP: KSK, CSK) or 256 (ZSK). */
  flags: number;
  /** DNSKEY RDATA: flags, protocol 3, algorithm 13, the public key (x‖y, 64 bytes). */
  rdata: Uint8Array;
  tag: number;
  /** Where it came from (the file), for messages. */
  source: string;
  /** The 64-byte r‖s signature of `data`. */
  sign(data: Uint8Array): Uint8Array;
}

/** Reads a P-256 private key (PKCS#8 or SEC1 PEM); throws naming `source` when it is anything else. */
export function zoneKeyFromPem(pem: string | Buffer, role: KeyRole, active: boolean, source: string): ZoneKey {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new Error(`${source}: not a PEM private key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1")
    throw new Error(`${source}: an ECDSA P-256 key is needed (DNSSEC algorithm 13)`);
  const jwk = createPublicKey(key).export({ format: "jwk" });
  const x = Buffer.from(jwk.x!, "base64url");
  const y = Buffer.from(jwk.y!, "base64url");
  const flags = role === "zsk" ? 256 : 257;
  const rdata = new Uint8Array(4 + 64);
  rdata[0] = flags >> 8;
  rdata[1] = flags & 0xff;
  rdata[2] = 3;
  rdata[3] = ALGORITHM_ECDSAP256SHA256;
  rdata.set(x, 4 + 32 - x.length);
  rdata.set(y, 4 + 64 - y.length);
  return {
    role,
    active,
    flags,
    rdata,
    tag: keyTag(rdata),
    source,
    sign: (data) => new Uint8Array(sign("sha256", data, { key, dsaEncoding: "ieee-p1363" })),
  };
}

/** A new P-256 private key as PKCS#8 PEM. */
export function generateKeyPem(): string {
  return generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }) as string;
}

/** RFC 4034 Appendix B. */
export function keyTag(rdata: Uint8Array): number {
  let ac = 0;
  for (let i = 0; i < rdata.length; i++) ac += i & 1 ? rdata[i] : rdata[i] << 8;
  ac += (ac >> 16) & 0xffff;
  return ac & 0xffff;
}

/** The DS RDATA for a key of the zone whose owner name (lowercase wire form) is `owner`. */
export function dsRdata(owner: Uint8Array, key: ZoneKey): Uint8Array {
  const digest = createHash("sha256").update(owner).update(key.rdata).digest();
  const out = new Uint8Array(4 + digest.length);
  out[0] = key.tag >> 8;
  out[1] = key.tag & 0xff;
  out[2] = ALGORITHM_ECDSAP256SHA256;
  out[3] = DIGEST_SHA256;
  out.set(digest, 4);
  return out;
}
