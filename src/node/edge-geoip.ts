/**
 * An edge box's side of GeoIP through the fleet (Node, `[geoip] fleet = true` with `[control]`, bare workerd): the
 * version the follower fetched and checked is put in the run directory the edge workers read (`config/geoip.json`
 * and `config/geoip/<sha256>.mmdb`); the workers load it at their next request after their once-a-second look, and
 * the box calls it swapped in once its health answer names the version (`cdn-geoip`).
 */
import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { HEALTH_PATH } from "../contracts/well-known.ts";
import type { GeoipFollowerOptions } from "../control/geoip-follower.ts";
import type { GeoipVersion } from "../control/geoip-fleet.ts";
import type { CdnConfig } from "../config/config.ts";

export const GEOIP_HEADER = "cdn-geoip";
const TAKE_TIMEOUT_MS = 30_000;

/** The follower's options for this box, or undefined when it does not take GeoIP from the fleet. */
export function edgeGeoipOptions(config: CdnConfig, storeDir: string | undefined, log: (line: string) => void): GeoipFollowerOptions | undefined {
  if (!config.geoip.fleet) return undefined;
  if (!config.control || !storeDir) throw new Error("geoip.fleet: an edge box takes the fleet's GeoIP with [control], on --runtime workerd");
  return { cfg: config.control, role: "edge", name: config.edge!.name, dir: join(storeDir, ".run", "geoip-fleet"), log };
}

/** What the workers read: "<version> <sha256>". */
export const geoipVersionText = (v: GeoipVersion) => `${v.version} ${v.sha256}`;

/** Puts the version where the workers read it (the file first, then geoip.json in one rename); keeps the one before. */
export function installEdgeGeoip(storeDir: string, path: string, v: GeoipVersion): void {
  const configDir = join(storeDir, ".run", "config");
  const geoDir = join(configDir, "geoip");
  mkdirSync(geoDir, { recursive: true });
  const name = `${v.sha256}.mmdb`;
  const target = join(geoDir, name);
  if (!existsSync(target)) {
    try {
      linkSync(path, target);
    } catch {
      copyFileSync(path, target);
    }
  }
  let before = "";
  try {
    before = (JSON.parse(readFileSync(join(configDir, "geoip.json"), "utf8")) as { city: string }).city.replace(/^geoip\//, "");
  } catch {
    // none yet
  }
  const aside = join(configDir, `.geoip.json.${process.pid}.tmp`);
  writeFileSync(aside, JSON.stringify({ city: `geoip/${name}`, version: geoipVersionText(v) }));
  renameSync(aside, join(configDir, "geoip.json"));
  for (const f of readdirSync(geoDir)) if (f !== name && f !== before) rmSync(join(geoDir, f), { force: true });
}

/** Waits until the edge's health answer names the version (its workers loaded it). */
export async function edgeTakesGeoip(edgeUrl: string, v: GeoipVersion): Promise<void> {
  const url = new URL(HEALTH_PATH, edgeUrl.replace("//0.0.0.0", "//127.0.0.1").replace("//[::]", "//[::1]"));
  const want = geoipVersionText(v);
  const deadline = Date.now() + TAKE_TIMEOUT_MS;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      await res.body?.cancel();
      last = res.headers.get(GEOIP_HEADER) ?? "absent";
      if (last === want) return;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the edge did not take GeoIP version ${v.version} within ${TAKE_TIMEOUT_MS / 1000} s (its ${GEOIP_HEADER}: ${last})`);
}

/** A box that no longer takes GeoIP from the fleet: its workers go back to the [geoip] files bound at start. */
export function forgetEdgeGeoip(storeDir: string): void {
  rmSync(join(storeDir, ".run", "config", "geoip.json"), { force: true });
  rmSync(join(storeDir, ".run", "config", "geoip"), { recursive: true, force: true });
}
