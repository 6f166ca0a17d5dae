/**
 * Scans shared across redirector boxes (pure: the contract of the values the boxes put in the key-value bucket
 * `<namespace>_mirrors`, one value per key; src/node/redirector-fleet.ts carries them over NATS JetStream).
 *
 *   box.<box>        BoxBeat      "I am up" every heartbeat (or "stopped" when it shuts down)
 *   mirror.<mirror>  SharedMirror what the last scan of that mirror found, by the box that scanned it
 *
 * Each mirror is scanned by one live box, chosen by rendezvous hashing of the mirror's name over the live boxes'
 * names: every box computes the same owner from the same heartbeats, and when a box leaves only its mirrors move.
 * Catalog ids differ between boxes (each numbers files in the order it first saw them), so per-file states travel in
 * an order both sides agree on: the listed, sized files sorted by path, with a digest of their paths, sizes and
 * checksums. A box applies another's states only when its own catalog has the same digest (until then it keeps the
 * value and applies it once its catalog catches up).
 */
import type { Catalog } from "./catalog.ts";
import { FileState, type MirrorState } from "./mirror-state.ts";

/** The largest value a box puts or takes (the fleet bucket's max_msg_size, nats-server's default max_payload). */
export const SHARED_MAX_VALUE_BYTES = 1024 * 1024;
/** Heartbeats missed before a box counts as gone and its mirrors move to the others. */
export const BEATS_BEFORE_GONE = 3;

export const BOX_PREFIX = "box.";
export const MIRROR_PREFIX = "mirror.";

/** The redirectors' bucket for a namespace: `parrot_mirrors` (its own stream: one value per key, no history). */
export function mirrorsBucket(namespace: string): string {
  return `${namespace.replace(/-/g, "_")}_mirrors`;
}

/** The bucket's layout (FleetKv.open): one value per key. */
export function mirrorsLayout(namespace: string): { bucket: string; history: number } {
  return { bucket: mirrorsBucket(namespace), history: 1 };
}

/** A key token for a name (names may hold `.`, which separates subject tokens): `.` and `_` escaped as nameToken does. */
export function keyToken(name: string): string {
  return name.replace(/[._]/g, (c) => `_${c.charCodeAt(0).toString(16)}`);
}

export interface BoxBeat {
  box: string;
  /** The box's clock when it said so (boxes' clocks are assumed NTP-close: seconds matter, not milliseconds). */
  at: number;
  state: "up" | "stopped";
  /** Its heartbeat interval: it counts as gone after BEATS_BEFORE_GONE of them without a beat. */
  interval_ms: number;
}

/** The files a shared state is about: listed ones with a size, sorted by path, and their digest. */
export interface CatalogOrder {
  version: number;
  digest: string;
  ids: number[];
}

/** The order and digest of a catalog's listed, sized files (SHA-256 over `path\0size\0sha256\n`). */
export async function catalogOrder(catalog: Catalog): Promise<CatalogOrder> {
  const files = catalog.files.filter((f) => f.listed && f.size !== undefined).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const text = files.map((f) => `${f.path}\0${f.size}\0${f.sha256 ?? ""}\n`).join("");
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return { version: catalog.version, digest: [...hash].map((b) => b.toString(16).padStart(2, "0")).join(""), ids: files.map((f) => f.id) };
}

export interface SharedMirror {
  v: 1;
  /** The box that scanned it. */
  box: string;
  mirror: string;
  /** The mirror's url and paths as the scanning box has them: another box's differing config is not applied. */
  url: string;
  paths: string[];
  /** When the scan ended (the scanning box's clock): a box applies only states newer than what it holds. */
  lastScan: number;
  failures: number;
  error?: string;
  synced: boolean;
  /** The catalog order's digest and file count; states: 4 bits per file in that order, base64 (null: too large to share). */
  catalog: string;
  files: number;
  states: string | null;
}

/** The mirror's state as a value for the bucket (per-file states left out when they would not fit in `maxBytes`). */
export function encodeMirror(m: MirrorState, order: CatalogOrder, box: string, maxBytes = SHARED_MAX_VALUE_BYTES): string {
  const packed = new Uint8Array(Math.ceil(order.ids.length / 2));
  order.ids.forEach((id, i) => (packed[i >> 1]! |= (m.files[id]! & 0x0f) << ((i & 1) * 4)));
  const value: SharedMirror = {
    v: 1,
    box,
    mirror: m.config.name,
    url: m.config.url,
    paths: m.config.paths,
    lastScan: m.lastScan ?? 0,
    failures: m.failures,
    ...(m.lastError !== undefined ? { error: m.lastError.slice(0, 500) } : {}),
    synced: m.synced,
    catalog: order.digest,
    files: order.ids.length,
    states: base64(packed),
  };
  const text = JSON.stringify(value);
  return new TextEncoder().encode(text).length <= maxBytes ? text : JSON.stringify({ ...value, states: null });
}

/** A bucket value as a JSON object, or why it is not one (too long, not JSON, not an object). */
function jsonObject(text: string, maxLength: number): Record<string, unknown> | string {
  if (text.length > maxLength) return `larger than ${maxLength} bytes`;
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return "not JSON";
  }
  return o && typeof o === "object" && !Array.isArray(o) ? (o as Record<string, unknown>) : "not an object";
}

/** A mirror's state from the bucket, checked: the value, or why it is not one. */
export function decodeMirror(text: string): SharedMirror | string {
  const o = jsonObject(text, SHARED_MAX_VALUE_BYTES);
  if (typeof o === "string") return o;
  if (o.v !== 1) return "v: not 1";
  for (const f of ["box", "mirror", "url", "catalog"] as const) if (typeof o[f] !== "string" || o[f] === "" || (o[f] as string).length > 2048) return `${f}: not a string`;
  if (!Array.isArray(o.paths) || !o.paths.every((p) => typeof p === "string")) return "paths: not a list of strings";
  for (const f of ["lastScan", "failures", "files"] as const) if (!Number.isSafeInteger(o[f]) || (o[f] as number) < 0) return `${f}: not a count`;
  if (o.error !== undefined && typeof o.error !== "string") return "error: not a string";
  if (typeof o.synced !== "boolean") return "synced: not true or false";
  if (o.states !== null) {
    if (typeof o.states !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(o.states)) return "states: not base64";
    const bytes = Math.ceil((o.files as number) / 2);
    if (Math.floor((o.states.length * 3) / 4) - (o.states.match(/=/g)?.length ?? 0) !== bytes) return `states: not ${o.files} files`;
  }
  return o as unknown as SharedMirror;
}

/**
 * Applies another box's (or this box's previous run's) scan of `m`: health and trace always when it is newer than
 * what `m` holds, per-file states only when the catalogs agree. "stale": not newer; "config": the mirror's url or
 * paths differ; "catalog": only its health applied, not its files nor its time (the caller keeps the value and
 * applies it again when its catalog changes).
 */
export function applyMirror(m: MirrorState, s: SharedMirror, order: CatalogOrder): "applied" | "stale" | "config" | "catalog" {
  if (s.url !== m.config.url || JSON.stringify(s.paths) !== JSON.stringify(m.config.paths)) return "config";
  if (m.lastScan !== undefined && s.lastScan <= m.lastScan) return "stale";
  const filesToo = s.states !== null && s.catalog === order.digest && s.files === order.ids.length;
  if (!filesToo && s.states !== null) {
    // Its health now; its files (and so its time) once this box's catalog is the same.
    [m.failures, m.lastError, m.synced] = [s.failures, s.error, s.synced];
    return "catalog";
  }
  if (filesToo) {
    const packed = unbase64(s.states!);
    order.ids.forEach((id, i) => {
      const st = (packed[i >> 1]! >> ((i & 1) * 4)) & 0x0f;
      if (m.files[id] === FileState.NotCarried || st > FileState.Wrong || st === FileState.NotCarried) return;
      m.recordFile(id, st as FileState);
    });
  }
  m.failures = s.failures;
  m.lastError = s.error;
  m.synced = s.synced;
  m.lastScan = s.lastScan;
  return "applied";
}

/** A box's heartbeat as a value, and back (checked). */
export function encodeBeat(b: BoxBeat): string {
  return JSON.stringify(b);
}

export function decodeBeat(text: string): BoxBeat | string {
  const o = jsonObject(text, 4096);
  if (typeof o === "string") return o;
  if (typeof o.box !== "string" || !/^[A-Za-z0-9._-]{1,128}$/.test(o.box)) return "box: not a box name";
  if (!Number.isSafeInteger(o.at)) return "at: not a time";
  if (o.state !== "up" && o.state !== "stopped") return "state: not up or stopped";
  if (!Number.isSafeInteger(o.interval_ms) || (o.interval_ms as number) < 1) return "interval_ms: not a positive integer";
  return o as unknown as BoxBeat;
}

/** The boxes up now: said "up" within BEATS_BEFORE_GONE of their intervals (`self` always: it is running). */
export function liveBoxes(beats: Iterable<BoxBeat>, now: number, self: string): string[] {
  const live = new Set([self]);
  for (const b of beats) if (b.state === "up" && now - b.at <= BEATS_BEFORE_GONE * b.interval_ms) live.add(b.box);
  return [...live].sort();
}

/** cyrb53: a 53-bit string hash (fast, well mixed; not for secrets). */
function hash53(s: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** The box that scans `mirror` among `boxes` (rendezvous hashing: highest score wins, ties by name). */
export function ownerOf(mirror: string, boxes: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const b of boxes) {
    const score = hash53(`${b}\0${mirror}`);
    if (score > bestScore || (score === bestScore && best !== undefined && b < best)) [best, bestScore] = [b, score];
  }
  return best;
}

function base64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

function unbase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
