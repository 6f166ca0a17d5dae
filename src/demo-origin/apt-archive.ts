/**
 * The demo origin's Debian archive, built in memory when it starts (no apt-utils, no network): two small packages
 * (.deb = ar archive of debian-binary, control.tar.gz, data.tar.gz), their Packages indexes (plain, gzip and
 * by-hash) for a few architectures, and an unsigned Release (clients add `[trusted=yes]`). Served under /debian/ with
 * strong ETags, as a static mirror serves it.
 */
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";

const enc = new TextEncoder();
const MTIME = Date.parse("2025-12-01T00:00:00Z") / 1000;
const ARCHITECTURES = ["amd64", "arm64", "i386", "all"];

interface DemoPackage {
  name: string;
  version: string;
  description: string;
  files: Record<string, string>;
}

const PACKAGES: DemoPackage[] = [
  {
    name: "parrot-hello",
    version: "1.0",
    description: "says hello through parrot-cdn",
    files: { "usr/share/doc/parrot-hello/README": "Hello from the parrot-cdn demo archive.\n" },
  },
  {
    name: "parrot-mirror-notes",
    version: "1.2",
    description: "notes on serving a Debian mirror through parrot-cdn",
    files: {
      "usr/share/doc/parrot-mirror-notes/README":
        "pool/ and by-hash/ never change: cached for long.\nInRelease, Release and the indexes change on every publish: revalidated on every request.\n",
    },
  },
];

/** The archive's files by path under /debian/ (e.g. "dists/parrot/Release"). */
export function buildDemoArchive(): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const stanzas: string[] = [];
  for (const p of PACKAGES) {
    const deb = buildDeb(p);
    const filename = `pool/main/${p.name[0]}/${p.name}/${p.name}_${p.version}_all.deb`;
    files.set(filename, deb);
    stanzas.push(
      [
        `Package: ${p.name}`,
        `Version: ${p.version}`,
        "Architecture: all",
        "Maintainer: parrot-cdn <demo@example.org>",
        `Filename: ${filename}`,
        `Size: ${deb.byteLength}`,
        `MD5sum: ${hash("md5", deb)}`,
        `SHA256: ${hash("sha256", deb)}`,
        `Description: ${p.description}`,
      ].join("\n"),
    );
  }
  const packages = enc.encode(stanzas.join("\n\n") + "\n");
  const packagesGz = new Uint8Array(gzipSync(packages, { level: 9 }));
  const indexed: [string, Uint8Array][] = [];
  for (const arch of ARCHITECTURES) {
    for (const [name, bytes] of [["Packages", packages], ["Packages.gz", packagesGz]] as const) {
      const path = `main/binary-${arch}/${name}`;
      indexed.push([path, bytes]);
      files.set(`dists/parrot/${path}`, bytes);
      files.set(`dists/parrot/main/binary-${arch}/by-hash/SHA256/${hash("sha256", bytes)}`, bytes);
    }
  }
  const release = [
    "Origin: parrot-cdn demo",
    "Label: parrot-cdn demo",
    "Suite: parrot",
    "Codename: parrot",
    `Date: ${new Date(MTIME * 1000).toUTCString()}`,
    `Architectures: ${ARCHITECTURES.filter((a) => a !== "all").join(" ")}`,
    "Components: main",
    "Acquire-By-Hash: yes",
    "Description: the parrot-cdn demo archive (unsigned: use [trusted=yes])",
    "MD5Sum:",
    ...indexed.map(([path, b]) => ` ${hash("md5", b)} ${String(b.byteLength).padStart(8)} ${path}`),
    "SHA256:",
    ...indexed.map(([path, b]) => ` ${hash("sha256", b)} ${String(b.byteLength).padStart(8)} ${path}`),
    "",
  ].join("\n");
  files.set("dists/parrot/Release", enc.encode(release));
  return files;
}

function hash(algorithm: "md5" | "sha256", bytes: Uint8Array): string {
  return createHash(algorithm).update(bytes).digest("hex");
}

/** A binary package: the ar archive dpkg reads. */
function buildDeb(p: DemoPackage): Uint8Array {
  const control = `Package: ${p.name}\nVersion: ${p.version}\nArchitecture: all\nMaintainer: parrot-cdn <demo@example.org>\nDescription: ${p.description}\n`;
  const dirs = new Set<string>();
  for (const path of Object.keys(p.files)) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  const data = tar([
    { name: "./", dir: true },
    ...[...dirs].sort().map((d) => ({ name: `./${d}/`, dir: true })),
    ...Object.entries(p.files).map(([name, text]) => ({ name: `./${name}`, body: enc.encode(text) })),
  ]);
  const controlTar = tar([{ name: "./", dir: true }, { name: "./control", body: enc.encode(control) }]);
  return ar([
    ["debian-binary", enc.encode("2.0\n")],
    ["control.tar.gz", new Uint8Array(gzipSync(controlTar))],
    ["data.tar.gz", new Uint8Array(gzipSync(data))],
  ]);
}

/** An ar archive (the .deb container): global header, then per member a 60-byte header and its data, padded even. */
function ar(members: [string, Uint8Array][]): Uint8Array {
  const parts: Uint8Array[] = [enc.encode("!<arch>\n")];
  for (const [name, data] of members) {
    const header =
      name.padEnd(16) + String(MTIME).padEnd(12) + "0".padEnd(6) + "0".padEnd(6) + "100644".padEnd(8) + String(data.byteLength).padEnd(10) + "`\n";
    parts.push(enc.encode(header), data);
    if (data.byteLength % 2) parts.push(enc.encode("\n"));
  }
  return join(parts);
}

/** A ustar archive of directories and files, owned by root. */
function tar(entries: { name: string; dir?: boolean; body?: Uint8Array }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const body = e.body ?? new Uint8Array(0);
    const h = new Uint8Array(512);
    const put = (offset: number, length: number, text: string) => h.set(enc.encode(text).subarray(0, length), offset);
    const octal = (n: number, length: number) => n.toString(8).padStart(length - 1, "0") + "\0";
    put(0, 100, e.name);
    put(100, 8, octal(e.dir ? 0o755 : 0o644, 8));
    put(108, 8, octal(0, 8));
    put(116, 8, octal(0, 8));
    put(124, 12, octal(body.byteLength, 12));
    put(136, 12, octal(MTIME, 12));
    put(148, 8, "        ");
    put(156, 1, e.dir ? "5" : "0");
    put(257, 6, "ustar\0");
    put(263, 2, "00");
    put(265, 32, "root");
    put(297, 32, "root");
    let sum = 0;
    for (const b of h) sum += b;
    put(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
    parts.push(h, body, new Uint8Array((512 - (body.byteLength % 512)) % 512));
  }
  parts.push(new Uint8Array(1024));
  return join(parts);
}

function join(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}
