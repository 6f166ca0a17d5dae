/**
 * The one way the Node hosts read cdn.toml: validated at start (every field and reason, the file named), and every
 * path in it (store, GeoIP files, certificates, keys) relative to the file's own folder.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";
import { ConfigError, parseConfig, type CdnConfig } from "../config/config.ts";

export interface ConfigFile {
  /** The file, or a description of where the text came from. */
  path: string;
  /** The folder relative paths in the config are resolved from. */
  dir: string;
  text: string;
  config: CdnConfig;
}

/** Reads and validates a config file; throws ConfigError (bad config) or an Error naming the file (unreadable). */
export function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`${path}: cannot read the CDN config: ${(err as Error).message}`);
  }
  return { path, dir: dirname(resolve(path)), text, config: parseConfig(text, path) };
}

/** A config given as text, its relative paths resolved from `dir`. */
export function configFromText(text: string, dir: string, source = "cdn.toml"): ConfigFile {
  return { path: source, dir: resolve(dir), text, config: parseConfig(text, source) };
}

/** A path from the config, absolute. */
export function configPath(file: Pick<ConfigFile, "dir">, path: string): string {
  return resolve(file.dir, path);
}

/** For commands: reads and validates, or prints the problems and exits with status 2. */
export function loadConfigFile(path: string): ConfigFile {
  try {
    return readConfigFile(path);
  } catch (err) {
    exitOnConfigError(err);
  }
}

/** Prints a config problem (or any error) in one message and exits with status 2. */
export function exitOnConfigError(err: unknown): never {
  console.error(err instanceof ConfigError || err instanceof Error ? err.message : String(err));
  process.exit(2);
}

/** The file's TOML with command-line overrides of [edge] applied, validated again. */
export function withOverrides(file: ConfigFile, edge: { origin?: string; name?: string }): ConfigFile {
  const raw = parseToml(file.text) as Record<string, Record<string, unknown>>;
  raw.edge ??= {};
  if (edge.origin) {
    raw.edge.origin = edge.origin;
    delete raw.edge.origins;
  }
  if (edge.name) raw.edge.name = edge.name;
  const text = stringifyToml(raw);
  return { ...file, text, config: parseConfig(text, `${file.path} (with command-line overrides)`) };
}
