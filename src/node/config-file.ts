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

/**
 * Every field of cdn.toml that names a file or folder (`[]` = each item of a list). The config a host gets has them
 * absolute, resolved from the config file's folder, so no part resolves a path from its working directory.
 */
export const CONFIG_PATH_FIELDS = [
  "edge.store_dir", "edge.tls_cert", "edge.tls_key",
  "geoip.city", "geoip.asn", "geoip.city_v6", "geoip.asn_v6",
  "dns.tls_cert", "dns.tls_key", "dns.dnssec.keys[].file",
  "anycast.run_dir",
  "frontdoor.cert_dir", "acme.ca_bundle", "sites[].cert_file", "sites[].key_file",
  "functions[].module", "functions[].secrets_file",
  "control.creds", "control.nkey", "control.tls_ca", "control.tls_cert", "control.tls_key",
  "redirector.state_file",
] as const;

/** The config with every path field absolute (see CONFIG_PATH_FIELDS). */
export function withAbsolutePaths(config: CdnConfig, dir: string): CdnConfig {
  const out = structuredClone(config) as unknown as Record<string, unknown>;
  const visit = (node: unknown, parts: string[]) => {
    if (!node || typeof node !== "object") return;
    const [head, ...rest] = parts;
    const list = head!.endsWith("[]");
    const key = list ? head!.slice(0, -2) : head!;
    const obj = node as Record<string, unknown>;
    if (!rest.length) {
      if (typeof obj[key] === "string") obj[key] = resolve(dir, obj[key] as string);
      return;
    }
    if (list) for (const item of (obj[key] as unknown[] | undefined) ?? []) visit(item, rest);
    else visit(obj[key], rest);
  };
  for (const field of CONFIG_PATH_FIELDS) visit(out, field.split("."));
  return out as unknown as CdnConfig;
}

/** Reads and validates a config file; throws ConfigError (bad config) or an Error naming the file (unreadable). */
export function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`${path}: cannot read the CDN config: ${(err as Error).message}`);
  }
  return configFromText(text, dirname(resolve(path)), path);
}

/** A config given as text, its relative paths resolved from `dir`. */
export function configFromText(text: string, dir: string, source = "cdn.toml"): ConfigFile {
  return { path: source, dir: resolve(dir), text, config: withAbsolutePaths(parseConfig(text, source), dir) };
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
  return { ...file, text, config: withAbsolutePaths(parseConfig(text, `${file.path} (with command-line overrides)`), file.dir) };
}
