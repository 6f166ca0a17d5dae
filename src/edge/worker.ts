/** Worker entry of the edge: wrangler dev, Miniflare and bare workerd all load this module. */
import { parseConfig } from "../config/config.ts";
import { embeddedConfigText } from "../config/embedded.ts";
import { configDigest } from "../contracts/config-digest.ts";
import { FUNCTION_HOST_CPU_PATH, FUNCTION_SLOTS_FILE, functionBinding, type FunctionsFile } from "../contracts/functions.ts";
import { createEdgeApp } from "./app.ts";
import { HotTier } from "./hot-tier.ts";
import { StoreLogSequence } from "./shared-log.ts";
import { CacheApiStore } from "./store.ts";
import { createGeoIp, type GeoIp } from "../geoip/geoip.ts";
import { openGeoBytes } from "../geoip/open.ts";
import type { GeoInfo } from "../geoip/types.ts";
import { storeLocks, storePeers, storeStats } from "../store/client.ts";
import { DailyKey } from "../privacy/client-addresses.ts";

export interface Env {
  /** cdn.toml's text; empty means the embedded default. */
  CDN_CONFIG?: string;
  /** Bare workerd: the run directory holding the host's current `cdn.toml` (reloaded without a restart). */
  CONFIG_DIR?: Fetcher;
  /** Bare workerd: the cache store service (locks shared by the box's processes, stats). Absent under Miniflare. */
  STORE?: Fetcher;
  /** Several edge processes share the store: coalescing locks are taken there (one process: in the isolate). */
  STORE_LOCKS?: boolean;
  /** Bare workerd: the store directory, read-only: checked bodies read from their files without a call to the store. */
  STORE_DISK?: Fetcher;
  /** GeoIP databases for the trace (the [geoip] files the host binds); the embedded default is never loaded here. */
  GEOIP_CITY?: ArrayBuffer | Uint8Array;
  GEOIP_CITY_V6?: ArrayBuffer | Uint8Array;
  GEOIP_ASN?: ArrayBuffer | Uint8Array;
  GEOIP_ASN_V6?: ArrayBuffer | Uint8Array;
  /** With [control]: the box's control agent (its unix socket) and this box start's id (src/control/boot.ts). */
  CONTROL?: Fetcher;
  BOOT_ID?: string;
  /** Bare workerd: the box host's key of the day for hashed client addresses (its environment, never a file). */
  PRIVACY_KEY?: string | null;
  /** `[[functions]]` on bare workerd: the key of the functions' identity, and public addresses for their allow_hosts. */
  FUNCTION_KEY?: string;
  FUNCTION_INTERNET?: Fetcher;
  /** The box host's socket for the edge: a function process's CPU time (the trace). */
  FUNCTION_HOST?: Fetcher;
}

/** `GB London (ENG) AS29518`: what the GeoIP knows, most general first; undefined when nothing. */
export function describeLocation(info: GeoInfo): string | undefined {
  const parts: string[] = [];
  if (info.country) parts.push(info.country);
  else if (info.continent) parts.push(info.continent);
  if (info.city) parts.push(info.city);
  if (info.region) parts.push(`(${info.region})`);
  if (info.asn !== undefined) parts.push(`AS${info.asn}`);
  return parts.length ? parts.join(" ") : undefined;
}

function geoFrom(env: Env, fleetCity: ArrayBuffer | undefined): GeoIp | undefined {
  // The fleet's City database (when the host wrote one) stands in for the [geoip] city files bound at start.
  const city = fleetCity ? [fleetCity] : [env.GEOIP_CITY, env.GEOIP_CITY_V6];
  const sources = [...city, env.GEOIP_ASN, env.GEOIP_ASN_V6]
    .filter((b): b is ArrayBuffer | Uint8Array => !!b && b.byteLength > 0)
    .map((b) => openGeoBytes(b));
  return sources.length ? createGeoIp(sources) : undefined;
}

let built: { text: string; geo: string; app: ReturnType<typeof createEdgeApp> } | { text: string; geo: string; error: Error } | undefined;
/** Kept across config changes with the same bounds: a reload does not empty the memory tier. */
let hot: { key: string; tier: HotTier } | undefined;
/** The purge log's sequence the store's answers carry (several processes: see StoreLogSequence). */
const logSequence = new StoreLogSequence();
/** One key per isolate: the host's when it gave one (every process of the box then agrees), else a new one. */
let privacyKey: DailyKey | undefined;

function appFor(env: Env, text: string, fleet: FleetGeoip | undefined) {
  const geoKey = fleet?.key ?? "";
  if (built?.text !== text || built.geo !== geoKey) {
    try {
      const config = parseConfig(text);
      const edge = config.edge;
      // The hot tier (off when hot_max_bytes = 0) in front of the Cache API: the disk store on bare workerd.
      const bounds = { maxBytes: edge?.hot_max_bytes ?? 0, maxObjectBytes: edge?.hot_max_object_bytes ?? 0 };
      const key = JSON.stringify(bounds);
      // Without the disk store (Miniflare, wrangler dev) uploads are counted on the way in (see CacheApiStore).
      // With the box's locks in the store process, a lookup that finds nothing takes the key's lock in the same call.
      const lockingLookups = env.STORE_LOCKS ? env.STORE : undefined;
      if (hot?.key !== key) {
        const inner = new CacheApiStore(caches.default, { checkUploads: !env.STORE, logSequence, lockingLookups });
        hot = { key, tier: new HotTier(inner, { ...bounds, disk: env.STORE_DISK }) };
      }
      const store = hot.tier;
      const geo = geoFrom(env, fleet?.city);
      const storeService = env.STORE;
      const peers = storeService && env.STORE_LOCKS ? storePeers(storeService, store, logSequence) : undefined;
      // A held copy is served only after the store's ring was read: another process may have replaced it.
      store.confirm = peers?.poll;
      built = {
        text,
        geo: geoKey,
        app: createEdgeApp({
          config,
          store,
          locks: storeService && env.STORE_LOCKS && edge ? storeLocks(storeService, edge.lock_timeout_ms) : undefined,
          // Several processes: a client's invalidation reaches the others' memory tiers through the store.
          peers,
          // ... and a purge another process answered applies here from the first store answer that tells of it.
          logSequence: peers ? logSequence : undefined,
          stats: storeService
            ? async () => ({
                store: await storeStats(storeService),
                hot: { bytes: store.totalBytes, entries: store.size, hits: store.hits, misses: store.misses, diskHits: store.diskHits },
              })
            : undefined,
          control: env.CONTROL,
          functions: {
            get: (id) => {
              const slot = functionsFile.slots[id];
              return slot === undefined ? undefined : (env as unknown as Record<string, Fetcher | undefined>)[functionBinding(slot)];
            },
            key: env.FUNCTION_KEY,
            internet: env.FUNCTION_INTERNET,
            version: (id) => functionsFile.versions[id],
            processes: () => functionsFile.processes,
            cpuMs: env.FUNCTION_HOST
              ? async (id) => {
                  const res = await env.FUNCTION_HOST!.fetch(`http://host${FUNCTION_HOST_CPU_PATH}${encodeURIComponent(id)}`);
                  return res.ok ? ((await res.json()) as { cpu_ms: number }).cpu_ms : (await res.body?.cancel(), undefined);
                }
              : undefined,
          },
          geoInfo: geo ? (ip) => geo.lookup(ip)?.info : undefined,
          bootId: env.BOOT_ID,
          configDigest: configDigest(text),
          privacyKey: (privacyKey ??= (env.PRIVACY_KEY && DailyKey.parse(env.PRIVACY_KEY)) || DailyKey.fresh()),
          geoipVersion: fleet?.version,
          locate: geo
            ? (ip) => {
                const found = geo.lookup(ip);
                return found ? describeLocation(found.info) : undefined;
              }
            : undefined,
        }),
      };
    } catch (error) {
      // A bad text never replaces a working configuration (the host validates before it writes one anyway).
      if (!built || "error" in built) built = { text, geo: geoKey, error: error as Error };
      else console.error(`edge: configuration not applied, the running one stays: ${(error as Error).message}`);
    }
  }
  return built;
}

/**
 * The configuration text: on bare workerd the host's `cdn.toml` in the run directory (CONFIG_DIR), read again at
 * most once a second, so a reload (SIGHUP) applies without a restart and without dropping a connection; else the
 * CDN_CONFIG binding, else the embedded default.
 */
let fileText: { text: string; at: number } | undefined;
async function configText(env: Env): Promise<string> {
  if (!env.CONFIG_DIR) return env.CDN_CONFIG || embeddedConfigText;
  if (fileText && Date.now() - fileText.at < 1000) return fileText.text;
  const res = await env.CONFIG_DIR.fetch("http://config/cdn.toml").catch(() => undefined);
  const text = res?.ok ? await res.text() : (await res?.body?.cancel(), undefined);
  fileText = { text: text ?? fileText?.text ?? env.CDN_CONFIG ?? embeddedConfigText, at: Date.now() };
  // Read after cdn.toml: the host writes it first, so a function new in this text already has its slot.
  if (env.FUNCTION_KEY !== undefined) functionsFile = (await readJson(env.CONFIG_DIR, FUNCTION_SLOTS_FILE)) ?? functionsFile;
  return fileText.text;
}

/**
 * The fleet's GeoIP (`[geoip] fleet = true`): the host writes `geoip.json` ({"city": "geoip/<sha256>.mmdb",
 * "version": "<n> <sha256>"}) and the file into the run directory; it is read again at most once a second, and the
 * database loaded once per change (one load at a time), so a new version applies without a restart.
 */
interface FleetGeoip {
  key: string;
  version: string;
  city: ArrayBuffer;
}
let fleetGeoip: { key: string; at: number; loaded?: FleetGeoip; loading?: Promise<void> } | undefined;
async function fleetGeoipOf(env: Env): Promise<FleetGeoip | undefined> {
  if (!env.CONFIG_DIR) return undefined;
  const dir = env.CONFIG_DIR;
  if (fleetGeoip && Date.now() - fleetGeoip.at < 1000) return fleetGeoip.loaded;
  const res = await dir.fetch("http://config/geoip.json").catch(() => undefined);
  const key = res?.ok ? await res.text() : (await res?.body?.cancel(), "");
  const was = fleetGeoip;
  if (!key || was?.key === key) {
    fleetGeoip = { ...(was ?? {}), key: was?.key ?? "", at: Date.now() };
    return fleetGeoip.loaded;
  }
  const state: NonNullable<typeof fleetGeoip> = { key, at: Date.now(), loaded: was?.loaded };
  fleetGeoip = state;
  state.loading = (async () => {
    try {
      const named = JSON.parse(key) as { city: string; version: string };
      const file = await dir.fetch(`http://config/${named.city}`);
      if (!file.ok) throw new Error(`${named.city}: ${file.status}`);
      state.loaded = { key, version: named.version, city: await file.arrayBuffer() };
    } catch (error) {
      // The host checked it before writing; a file it could not read keeps the database before.
      console.error(`edge: the fleet's GeoIP (${key.trim()}) not loaded, the one before stays: ${(error as Error).message}`);
    }
  })();
  await state.loading;
  return state.loaded;
}

/** `[[functions]]` on bare workerd: which FN_<slot> binding runs each function, its version, its figures. */
let functionsFile: FunctionsFile = { slots: {}, versions: {}, processes: [] };

async function readJson<T>(dir: Fetcher, name: string): Promise<T | undefined> {
  const res = await dir.fetch(`http://config/${name}`).catch(() => undefined);
  if (!res?.ok) return void (await res?.body?.cancel());
  return (await res.json().catch(() => undefined)) as T | undefined;
}

const misconfigured = (error: Error) =>
  new Response(`500 edge misconfigured\n${error.message}\n`, { status: 500, headers: { "content-type": "text/plain; charset=utf-8" } });

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const [text, geo] = await Promise.all([configText(env), fleetGeoipOf(env)]);
    const b = appFor(env, text, geo);
    if ("error" in b) return misconfigured(b.error);
    return b.app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;

/** Bare workerd, `[[functions]]`: the socket only the box's function processes reach (their fetch() to their site). */
export const fromFunction = {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const [text, geo] = await Promise.all([configText(env), fleetGeoipOf(env)]);
    const b = appFor(env, text, geo);
    if ("error" in b) return misconfigured(b.error);
    return b.app.fromFunction(request, ctx);
  },
} satisfies ExportedHandler<Env>;
