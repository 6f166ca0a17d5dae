/**
 * Deployed versions of a site's function (`npm run fn -- deploy`), kept as files beside cdn.toml: in
 * `<config dir>/.parrot/functions/<id>/`, one bundle per version (`v1.js`, `v2.js`…, never rewritten), a `current`
 * file naming the live one, and `history.json` (when and from what each version was made). The box reads the
 * current version at start and on reload; without one it bundles the function's `module` itself.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ConfigFile } from "./config-file.ts";

export interface VersionInfo {
  version: string;
  /** ISO time it was deployed. */
  at: string;
  /** The source file it was bundled from. */
  from: string;
  bytes: number;
}

export function versionsDir(file: Pick<ConfigFile, "dir">, id: string): string {
  return join(file.dir, ".parrot", "functions", id);
}

/** The live deployed version's bundle, or undefined (never deployed, or rolled back past the first). */
export function currentVersionFile(file: Pick<ConfigFile, "dir">, id: string): { version: string; path: string } | undefined {
  const dir = versionsDir(file, id);
  let version: string;
  try {
    version = readFileSync(join(dir, "current"), "utf8").trim();
  } catch {
    return undefined;
  }
  if (!/^v\d+$/.test(version)) return undefined;
  const path = join(dir, `${version}.js`);
  return existsSync(path) ? { version, path } : undefined;
}

export function listVersions(file: Pick<ConfigFile, "dir">, id: string): { versions: VersionInfo[]; current?: string } {
  const dir = versionsDir(file, id);
  if (!existsSync(dir)) return { versions: [] };
  const history = readHistory(dir);
  const versions = readdirSync(dir)
    .filter((f) => /^v\d+\.js$/.test(f))
    .map((f) => f.slice(0, -3))
    .sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))
    .map((v) => history[v] ?? { version: v, at: statSync(join(dir, `${v}.js`)).mtime.toISOString(), from: "?", bytes: statSync(join(dir, `${v}.js`)).size });
  return { versions, current: currentVersionFile(file, id)?.version };
}

/** Stores a new version (the next number) and makes it current. */
export function addVersion(file: Pick<ConfigFile, "dir">, id: string, code: Uint8Array, from: string, now = new Date()): VersionInfo {
  const dir = versionsDir(file, id);
  mkdirSync(dir, { recursive: true });
  const { versions } = listVersions(file, id);
  const n = versions.reduce((m, v) => Math.max(m, Number(v.version.slice(1))), 0) + 1;
  const info: VersionInfo = { version: `v${n}`, at: now.toISOString(), from, bytes: code.byteLength };
  writeAtomically(join(dir, `${info.version}.js`), code);
  const history = readHistory(dir);
  history[info.version] = info;
  writeAtomically(join(dir, "history.json"), JSON.stringify(history, null, 2));
  setCurrent(file, id, info.version);
  return info;
}

/**
 * Stores a version made elsewhere (the fleet's, `[control]`: src/control/fleet-functions.ts) under its own number and
 * makes it current, as a local deploy does. False when it is current already with this code (nothing to do).
 */
export function installVersion(file: Pick<ConfigFile, "dir">, id: string, info: VersionInfo, code: Uint8Array): boolean {
  const dir = versionsDir(file, id);
  const path = join(dir, `${info.version}.js`);
  const same = existsSync(path) && Buffer.compare(readFileSync(path), code) === 0;
  if (same && currentVersionFile(file, id)?.version === info.version) return false;
  mkdirSync(dir, { recursive: true });
  // The fleet's numbering is the box's: a per-box deploy of the same number made before [control] is replaced.
  if (!same) writeAtomically(path, code);
  const history = readHistory(dir);
  history[info.version] = info;
  writeAtomically(join(dir, "history.json"), JSON.stringify(history, null, 2));
  setCurrent(file, id, info.version);
  return true;
}

/** Makes `version` current; it must exist. */
export function setCurrent(file: Pick<ConfigFile, "dir">, id: string, version: string): void {
  const dir = versionsDir(file, id);
  if (!existsSync(join(dir, `${version}.js`))) throw new Error(`function ${id} has no version ${version}`);
  writeAtomically(join(dir, "current"), `${version}\n`);
}

/** No deployed version is current any more: the box bundles the function's `module` again. False: none was. */
export function clearCurrent(file: Pick<ConfigFile, "dir">, id: string): boolean {
  const path = join(versionsDir(file, id), "current");
  if (!existsSync(path)) return false;
  rmSync(path);
  return true;
}

/** The version before the current one (by number), for a rollback. */
export function previousVersion(file: Pick<ConfigFile, "dir">, id: string): string | undefined {
  const { versions, current } = listVersions(file, id);
  const i = versions.findIndex((v) => v.version === current);
  return i > 0 ? versions[i - 1]!.version : undefined;
}

function readHistory(dir: string): Record<string, VersionInfo> {
  try {
    return JSON.parse(readFileSync(join(dir, "history.json"), "utf8")) as Record<string, VersionInfo>;
  } catch {
    return {};
  }
}

function writeAtomically(path: string, data: string | Uint8Array) {
  const aside = `${path}.${process.pid}.tmp`;
  writeFileSync(aside, data);
  renameSync(aside, path);
}
