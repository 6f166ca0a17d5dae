/**
 * Certificates on disk. The shared certificate directory (`[frontdoor] cert_dir`) holds one `<site>.pem` per site:
 * the chain, then the key, written atomically (a temporary file renamed over the old one), so a reader never sees
 * half of a renewal, whether it is this box or another one reading a copy. Every pair is checked before use: a file
 * that does not parse, a key that does not match its certificate, or an expired certificate is refused (and the
 * certificate being served stays).
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface CertPair {
  /** The leaf first, then its issuers (PEM). */
  chainPem: string;
  keyPem: string;
}

export interface CertInfo {
  serial: string;
  /** Unix milliseconds. */
  notBefore: number;
  notAfter: number;
  /** DNS names of the subjectAltName, lower-case. */
  names: string[];
  issuer: string;
  /** The OCSP responder the certificate names (Authority Information Access), if any. */
  ocspUrl?: string;
  fingerprint256: string;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

/** Splits PEM text into its certificates and its (single) private key. */
export function splitPem(text: string): CertPair {
  const certs: string[] = [];
  const keys: string[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    if (m[1] === "CERTIFICATE") certs.push(m[0]);
    else if (/PRIVATE KEY$/.test(m[1]!)) keys.push(m[0]);
  }
  if (!certs.length) throw new Error("no certificate in the PEM text");
  if (keys.length !== 1) throw new Error(keys.length ? "more than one private key in the PEM text" : "no private key in the PEM text");
  return { chainPem: certs.join("\n") + "\n", keyPem: keys[0]! + "\n" };
}

/** The certificates of a PEM chain, leaf first. */
export function chainCertificates(chainPem: string): string[] {
  return [...chainPem.matchAll(PEM_BLOCK)].filter((m) => m[1] === "CERTIFICATE").map((m) => m[0]);
}

/** What a certificate says, after checking that the key belongs to it. Throws a readable error otherwise. */
export function inspectPair(pair: CertPair): CertInfo {
  const [leafPem] = chainCertificates(pair.chainPem);
  if (!leafPem) throw new Error("no certificate in the chain");
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafPem);
  } catch (err) {
    throw new Error(`the certificate does not parse: ${(err as Error).message}`);
  }
  let key;
  try {
    key = createPrivateKey(pair.keyPem);
  } catch (err) {
    throw new Error(`the private key does not parse: ${(err as Error).message}`);
  }
  if (!leaf.checkPrivateKey(key)) throw new Error("the private key does not belong to the certificate");
  const names = (leaf.subjectAltName ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.startsWith("DNS:"))
    .map((s) => s.slice(4).toLowerCase());
  const ocsp = /OCSP - URI:(\S+)/.exec(leaf.infoAccess ?? "")?.[1];
  return {
    serial: leaf.serialNumber.toLowerCase(),
    notBefore: Date.parse(leaf.validFrom),
    notAfter: Date.parse(leaf.validTo),
    names,
    issuer: leaf.issuer.replace(/\n/g, ", "),
    ocspUrl: ocsp,
    fingerprint256: leaf.fingerprint256,
  };
}

/** Whether a certificate's names cover every site name (a `*.x` SAN covers one label below x). */
export function coversNames(certNames: string[], siteNames: string[]): boolean {
  return siteNames.every((name) => {
    const n = name.toLowerCase();
    if (certNames.includes(n)) return true;
    if (n.startsWith("*.")) return false;
    const parent = n.slice(n.indexOf(".") + 1);
    return n.includes(".") && certNames.includes(`*.${parent}`);
  });
}

/** The PEM text HAProxy loads: chain, then key. */
export function combinedPem(pair: CertPair): string {
  return `${pair.chainPem.trim()}\n${pair.keyPem.trim()}\n`;
}

/** Writes a file by renaming a fully written temporary file over it (mode 0600: it holds a key). */
export function writeAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, path);
}

/** A file's identity for change detection: size and modification time, or null when it is missing. */
export function fileStamp(path: string): string | null {
  try {
    const s = statSync(path);
    return `${s.size}:${s.mtimeMs}:${s.ino}`;
  } catch {
    return null;
  }
}

/** The shared certificate directory: `<dir>/<site>.pem`. */
export class CertDirectory {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  path(site: string): string {
    return join(this.dir, `${site}.pem`);
  }

  /** The site's pair, or undefined when there is none. Throws when the file is there but unusable. */
  read(site: string): CertPair | undefined {
    let text: string;
    try {
      text = readFileSync(this.path(site), "utf8");
    } catch {
      return undefined;
    }
    return splitPem(text);
  }

  write(site: string, pair: CertPair): void {
    writeAtomic(this.path(site), combinedPem(pair));
  }

  stamp(site: string): string | null {
    return fileStamp(this.path(site));
  }
}
