/**
 * Certificates made on this box with the `openssl` command (a Debian package on every edge box; Node cannot write
 * X.509 certificates): a local CA for `certificate = "local"` sites (npm start prints the curl command that trusts
 * it), and a short-lived self-signed placeholder served for an ACME site until its first certificate arrives (so
 * the terminator starts at once and the real certificate replaces it without a reload).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeAtomic, type CertPair } from "./cert-store.ts";

export interface LocalCa {
  certPath: string;
  keyPath: string;
}

function openssl(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("openssl", args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) {
        const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
        reject(new Error(missing ? "openssl not found: apt-get install openssl" : `openssl ${args[0]} failed: ${stderr.trim() || err.message}`));
      } else resolve();
    });
  });
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
const serial = () => `0x${randomBytes(16).toString("hex").replace(/^[89a-f]/, "7")}`;
/** A subject CN: the first name when it fits X.509's 64 characters. */
const commonName = (names: string[]) => (names[0]!.length <= 64 ? names[0]! : "parrot-cdn site");

/** The box's local CA in `dir` (local-ca.pem, local-ca.key), made on first use. */
export async function ensureLocalCa(dir: string): Promise<LocalCa> {
  const ca = { certPath: join(dir, "local-ca.pem"), keyPath: join(dir, "local-ca.key") };
  if (existsSync(ca.certPath) && existsSync(ca.keyPath)) return ca;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(tmpdir(), "parrot-ca-"));
  try {
    await openssl([
      "req", "-x509", ...EC_KEY, "-days", "3650", "-set_serial", serial(),
      "-subj", `/O=parrot-cdn/CN=parrot-cdn local CA ${new Date().toISOString().slice(0, 10)} ${randomBytes(3).toString("hex")}`,
      "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
      "-keyout", join(work, "ca.key"), "-out", join(work, "ca.pem"),
    ]);
    writeAtomic(ca.keyPath, readFileSync(join(work, "ca.key"), "utf8"));
    writeAtomic(ca.certPath, readFileSync(join(work, "ca.pem"), "utf8"));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return ca;
}

/** A certificate for `names` signed by the local CA (the chain holds the leaf and the CA). */
export async function issueLocalCertificate(ca: LocalCa, names: string[], days = 90): Promise<CertPair> {
  const work = mkdtempSync(join(tmpdir(), "parrot-leaf-"));
  try {
    writeFileSync(
      join(work, "ext.cnf"),
      [
        `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth",
        "authorityKeyIdentifier=keyid",
      ].join("\n") + "\n",
    );
    await openssl(["req", "-new", ...EC_KEY, "-subj", `/CN=${commonName(names)}`, "-keyout", join(work, "leaf.key"), "-out", join(work, "leaf.csr")]);
    await openssl([
      "x509", "-req", "-in", join(work, "leaf.csr"), "-CA", ca.certPath, "-CAkey", ca.keyPath, "-set_serial", serial(),
      "-days", String(days), "-extfile", join(work, "ext.cnf"), "-out", join(work, "leaf.pem"),
    ]);
    return {
      chainPem: readFileSync(join(work, "leaf.pem"), "utf8").trim() + "\n" + readFileSync(ca.certPath, "utf8").trim() + "\n",
      keyPem: readFileSync(join(work, "leaf.key"), "utf8"),
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** A self-signed certificate for `names`, valid one day: served until the real one is issued. */
export async function placeholderCertificate(names: string[]): Promise<CertPair> {
  const work = mkdtempSync(join(tmpdir(), "parrot-placeholder-"));
  try {
    await openssl([
      "req", "-x509", ...EC_KEY, "-days", "1", "-set_serial", serial(), "-subj", `/O=parrot-cdn placeholder/CN=${commonName(names)}`,
      "-addext", `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
      "-keyout", join(work, "key.pem"), "-out", join(work, "cert.pem"),
    ]);
    return { chainPem: readFileSync(join(work, "cert.pem"), "utf8"), keyPem: readFileSync(join(work, "key.pem"), "utf8") };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
