/**
 * A small signed Debian archive built with the real tools (dpkg-deb, apt-ftparchive, gpg), published again on
 * request, and a private apt client (its own sources list, state, cache and trust) to read it through an edge.
 *
 *   <root>/debian/pool/main/p/<name>/<name>_<version>_all.deb
 *   <root>/debian/dists/parrot/{InRelease,Release,Release.gpg}
 *   <root>/debian/dists/parrot/main/binary-<arch>/{Packages,Packages.gz,by-hash/SHA256/<hash>}
 */
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync, copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";

export interface Package {
  name: string;
  version: string;
  /** Bytes of incompressible payload (a large package: its download goes through slices). */
  payload?: number;
}

const run = promisify(execFile);
const ARCH = execFileSync("dpkg", ["--print-architecture"], { encoding: "utf8" }).trim();

export class AptRepo {
  readonly root: string;
  readonly archive: string;
  private readonly gnupg: string;
  /** Each publish gets file times a minute later: nginx's ETag is mtime + size, a same-size file must not match. */
  private clock = Math.floor(Date.now() / 1000) - 3600;

  constructor(root: string) {
    this.root = root;
    this.archive = join(root, "debian");
    this.gnupg = join(root, "gnupg");
    mkdirSync(this.gnupg, { recursive: true, mode: 0o700 });
    execFileSync("gpg", ["--homedir", this.gnupg, "--batch", "--passphrase", "", "--quick-gen-key", "Parrot Archive Test <archive@example.org>", "ed25519", "sign", "never"], { stdio: "ignore" });
    writeFileSync(join(root, "archive-key.gpg"), execFileSync("gpg", ["--homedir", this.gnupg, "--export"]));
  }

  /** The keyring apt trusts for this archive (`signed-by`). */
  get keyring(): string {
    return join(this.root, "archive-key.gpg");
  }

  /** Path of a package file in the pool, relative to the archive. */
  poolPath(p: Package): string {
    return `pool/main/p/${p.name}/${p.name}_${p.version}_all.deb`;
  }

  /** Builds the packages (once each) and publishes an archive that lists exactly `packages`. */
  publish(packages: Package[]) {
    this.clock += 60;
    for (const p of packages) {
      const deb = join(this.archive, this.poolPath(p));
      if (!existsSync(deb)) this.buildDeb(p, deb);
    }
    const dists = join(this.archive, "dists/parrot");
    const bin = join(dists, `main/binary-${ARCH}`);
    rmSync(dists, { recursive: true, force: true });
    mkdirSync(join(bin, "by-hash/SHA256"), { recursive: true });
    // Only this publish's packages: apt-ftparchive scans a directory of links to them.
    const listed = join(this.root, "listed");
    rmSync(listed, { recursive: true, force: true });
    for (const p of packages) {
      mkdirSync(join(listed, "pool/main/p", p.name), { recursive: true });
      copyFileSync(join(this.archive, this.poolPath(p)), join(listed, this.poolPath(p)));
    }
    const index = execFileSync("apt-ftparchive", ["packages", "pool"], { cwd: listed });
    writeFileSync(join(bin, "Packages"), index);
    execFileSync("gzip", ["-9", "-n", "-k", join(bin, "Packages")]);
    for (const f of ["Packages", "Packages.gz"]) {
      const hash = createHash("sha256").update(readFileSync(join(bin, f))).digest("hex");
      copyFileSync(join(bin, f), join(bin, "by-hash/SHA256", hash));
    }
    const fields = {
      Origin: "Parrot",
      Label: "Parrot",
      Suite: "parrot",
      Codename: "parrot",
      Architectures: ARCH,
      Components: "main",
      "Acquire-By-Hash": "yes",
    };
    const release = execFileSync(
      "apt-ftparchive",
      [...Object.entries(fields).flatMap(([k, v]) => ["-o", `APT::FTPArchive::Release::${k}=${v}`]), "release", "."],
      { cwd: dists },
    );
    writeFileSync(join(dists, "Release.new"), release);
    renameSync(join(dists, "Release.new"), join(dists, "Release"));
    const gpg = ["--homedir", this.gnupg, "--batch", "--yes"];
    execFileSync("gpg", [...gpg, "--clearsign", "-o", join(dists, "InRelease"), join(dists, "Release")]);
    execFileSync("gpg", [...gpg, "--detach-sign", "-o", join(dists, "Release.gpg"), join(dists, "Release")]);
    for (const f of ["InRelease", "Release", "Release.gpg", "main", `main/binary-${ARCH}/Packages`, `main/binary-${ARCH}/Packages.gz`]) {
      utimesSync(join(dists, f), this.clock, this.clock);
    }
  }

  /** SHA-256 of a package file as published. */
  sha256(p: Package): string {
    return createHash("sha256").update(readFileSync(join(this.archive, this.poolPath(p)))).digest("hex");
  }

  private buildDeb(p: Package, out: string) {
    const dir = join(this.root, "build", `${p.name}-${p.version}`);
    mkdirSync(join(dir, "DEBIAN"), { recursive: true });
    mkdirSync(join(dir, "usr/share", p.name), { recursive: true });
    writeFileSync(
      join(dir, "DEBIAN/control"),
      `Package: ${p.name}\nVersion: ${p.version}\nArchitecture: all\nMaintainer: Parrot Test <archive@example.org>\nDescription: parrot-cdn test package ${p.name}\n`,
    );
    writeFileSync(join(dir, "usr/share", p.name, "README"), `${p.name} ${p.version}\n`);
    if (p.payload) writeFileSync(join(dir, "usr/share", p.name, "payload.bin"), randomBytes(p.payload));
    mkdirSync(join(out, ".."), { recursive: true });
    execFileSync("dpkg-deb", ["-Znone", "--root-owner-group", "--build", dir, out], { stdio: "ignore" });
    rmSync(dir, { recursive: true, force: true });
    utimesSync(out, this.clock, this.clock);
  }
}

/** An apt client of its own: sources list, state, cache, trust and config in `dir`, never the system's. */
export class AptClient {
  private readonly dir: string;
  private readonly config: string;

  constructor(dir: string, archiveUrl: string, keyring: string) {
    this.dir = dir;
    for (const d of ["state/lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/preferences.d", "etc/trusted.gpg.d", "etc/sources.list.d", "log"]) {
      mkdirSync(join(dir, d), { recursive: true });
    }
    writeFileSync(join(dir, "state/status"), "");
    writeFileSync(join(dir, "etc/sources.list"), `deb [signed-by=${keyring}] ${archiveUrl} parrot main\n`);
    this.config = join(dir, "apt.conf");
    writeFileSync(
      this.config,
      [
        `Dir::State "${dir}/state";`,
        `Dir::State::status "${dir}/state/status";`,
        `Dir::Cache "${dir}/cache";`,
        `Dir::Etc "${dir}/etc";`,
        `Dir::Etc::Parts "${dir}/etc/apt.conf.d";`,
        `Dir::Log "${dir}/log";`,
        `APT::Architecture "${ARCH}";`,
        `APT::Architectures { "${ARCH}"; };`,
        `Acquire::Languages "none";`,
        `Acquire::Retries "0";`,
        `Debug::NoLocking "true";`,
        `APT::Sandbox::User "root";`,
        "",
      ].join("\n"),
    );
  }

  /**
   * Runs apt-get with this client's config; its output (stdout and stderr), or throws with it. Asynchronous: the
   * origin may be served by this very process.
   */
  async aptGet(args: string[], cwd = this.dir): Promise<string> {
    try {
      const { stdout, stderr } = await run("apt-get", ["-q", ...args], { cwd, env: this.env, timeout: 120_000 });
      return stdout + stderr;
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`apt-get ${args.join(" ")} failed: ${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`);
    }
  }

  private get env() {
    return { ...process.env, APT_CONFIG: this.config, LC_ALL: "C" };
  }

  /** apt-cache with this client's config. */
  async aptCache(args: string[]): Promise<string> {
    return (await run("apt-cache", args, { cwd: this.dir, env: this.env, timeout: 60_000 })).stdout;
  }
}
