/** Reading cdn.toml from disk for the Node hosts: validation at start, with the file's name in every error. */
import { readFileSync } from "node:fs";
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";
import { ConfigError, parseConfig, type CdnConfig } from "../config/config.ts";

export interface ConfigFile {
  path: string;
  text: string;
  config: CdnConfig;
}

/** Reads and validates a config file; on a bad file prints the problems and exits with status 2. */
export function loadConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    console.error(`${path}: cannot read the CDN config: ${(err as Error).message}`);
    process.exit(2);
  }
  try {
    return { path, text, config: parseConfig(text, path) };
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
}

/** The file's TOML with command-line overrides of [edge] applied, validated again. */
export function withOverrides(file: ConfigFile, edge: { origin?: string; name?: string }): string {
  const raw = parseToml(file.text) as Record<string, Record<string, unknown>>;
  raw.edge ??= {};
  if (edge.origin) {
    raw.edge.origin = edge.origin;
    delete raw.edge.origins;
  }
  if (edge.name) raw.edge.name = edge.name;
  const text = stringifyToml(raw);
  try {
    parseConfig(text, `${file.path} (with command-line overrides)`);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  return text;
}
