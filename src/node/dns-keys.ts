/**
 * Node host: the DNSSEC keys [dns.dnssec] names (PEM files relative to the config file), and what an operator
 * publishes for them — the DNSKEY set and the DS records for the parent zone (`npm run dns -- ds`).
 */
import { chmodSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { ConfigError, parseConfig, type CdnConfig } from "../config/config.ts";
import { dsRdata, generateKeyPem, zoneKeyFromPem, type ZoneKey } from "../dns/dnssec/keys.ts";
import { encodeName } from "../dns/names.ts";

/** The zone's keys; none when the zone is not signed. Throws naming the file and reason. */
export async function loadZoneKeys(config: CdnConfig, baseDir: string): Promise<ZoneKey[]> {
  const d = config.dns?.dnssec;
  if (!d) return [];
  return Promise.all(
    d.keys.map(async (k, i) => {
      const path = resolve(baseDir, k.file);
      let pem: Buffer;
      try {
        pem = await readFile(path);
      } catch (err) {
        throw new Error(`dns.dnssec.keys[${i}]: cannot read ${path}: ${(err as Error).message}`);
      }
      try {
        return zoneKeyFromPem(pem, k.role, k.active, path);
      } catch (err) {
        throw new Error(`dns.dnssec.keys[${i}]: ${(err as Error).message}`);
      }
    }),
  );
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex").toUpperCase();

/**
 * What to publish, in zone-file form: each key's DNSKEY, and for KSKs and CSKs the DS for the parent zone; with
 * `anchors`, the DS records as a BIND/delv trust-anchors block instead.
 */
export function describeKeys(config: CdnConfig, keys: ZoneKey[], anchors = false): string {
  const dns = config.dns!;
  const origin = dns.zone.toLowerCase().replace(/\.$/, "");
  const owner = encodeName(origin);
  const sep = keys.filter((k) => k.role !== "zsk");
  if (anchors) {
    const lines = sep.map((k) => {
      const ds = dsRdata(owner, k);
      return `  ${origin}. static-ds ${k.tag} 13 2 "${hex(ds.subarray(4))}";`;
    });
    return `trust-anchors {\n${lines.join("\n")}\n};\n`;
  }
  const ttl = dns.dnssec?.dnskey_ttl ?? 3600;
  const out: string[] = [];
  for (const k of keys)
    out.push(`${origin}. ${ttl} IN DNSKEY ${k.flags} 3 13 ${b64(k.rdata.subarray(4))} ; ${k.role.toUpperCase()}${k.active ? "" : " (published, not signing)"} key tag ${k.tag} (${k.source})`);
  for (const k of sep) {
    const ds = dsRdata(owner, k);
    out.push(`${origin}. IN DS ${k.tag} 13 2 ${hex(ds.subarray(4))} ; give this to the parent zone (${k.role.toUpperCase()} ${k.tag})`);
  }
  return `${out.join("\n")}\n`;
}

/** `npm run dns -- ds`: the config file's keys, described (see describeKeys); throws with the reason. */
export async function keysReport(configPath: string, anchors: boolean): Promise<string> {
  let config: CdnConfig;
  try {
    config = parseConfig(await readFile(configPath, "utf8"), configPath);
  } catch (err) {
    throw new Error(err instanceof ConfigError ? err.message : `cannot read ${configPath}: ${(err as Error).message}`);
  }
  if (!config.dns?.dnssec) throw new Error(`${configPath} has no [dns.dnssec] keys`);
  return describeKeys(config, await loadZoneKeys(config, dirname(configPath)), anchors);
}

/** Writes a new P-256 key (PKCS#8 PEM, mode 0600) to `path`; refuses to overwrite. */
export function writeNewKey(path: string): void {
  writeFileSync(path, generateKeyPem(), { flag: "wx", mode: 0o600 });
  chmodSync(path, 0o600);
}
