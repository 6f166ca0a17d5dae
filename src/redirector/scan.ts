/**
 * Freshness over HTTP: the origin's file lists (SHA256SUMS, apt Packages), and per-mirror scan rounds: the trace
 * file (compared with the origin's), then HEAD of files, bounded in count and concurrency: first the files the
 * mirror is not known to have (newest first: they are the ones it is catching up on), then the rest in turn (a file
 * that vanished or changed on the mirror is found). Every request has a deadline; any fetch works (tests inject one).
 */
import type { IndexConfig, RedirectorConfig } from "../config/redirector-schema.ts";
import type { FetchLike } from "../contracts/fetch.ts";
import { listRoot, parsePackages, parseSha256Sums, type Catalog, type OriginFile } from "./catalog.ts";
import { FileState, type MirrorState } from "./mirror-state.ts";

type ScanSettings = Pick<RedirectorConfig, "scan_files_per_round" | "scan_concurrency" | "scan_timeout_ms" | "max_failures" | "name">;

/** What a mirror's logs see of a scan: the redirector, and which box (its operator can tell boxes apart). */
export function scanUserAgent(box: string | undefined): string {
  return `parrot-cdn-redirector${box ? ` (${box})` : ""}`;
}

/** Runs `work` over `items` with at most `limit` at once. */
export async function bounded<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

async function timed(fetchImpl: FetchLike, url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
  return fetchImpl(url, { ...init, signal: AbortSignal.timeout(timeoutMs), headers: { "accept-encoding": "identity", ...(init.headers as Record<string, string>) } });
}

async function bodyText(res: Response, path: string): Promise<string> {
  if (!path.endsWith(".gz")) return res.text();
  return new Response(res.body!.pipeThrough(new DecompressionStream("gzip"))).text();
}

/** A decoded path as it goes in a URL: each segment percent-encoded (spaces, non-ASCII), `+ : @ = ,` kept. */
export function encodePath(path: string): string {
  return path
    .split("/")
    .map((seg) => encodeURIComponent(seg).replace(/%(2B|3A|40|3D|2C)/g, (m) => decodeURIComponent(m)))
    .join("/");
}

/** Joins the origin's (or a mirror's, the CDN's) base URL and a (decoded) path on the origin. */
export function urlFor(base: string, path: string): string {
  return base.replace(/\/+$/, "") + encodePath(path.startsWith("/") ? path : `/${path}`);
}

/** One list from the origin; throws with the reason when it cannot be read. */
export async function readIndex(fetchImpl: FetchLike, origin: string, index: IndexConfig, timeoutMs: number): Promise<OriginFile[]> {
  const res = await timed(fetchImpl, urlFor(origin, index.path), {}, timeoutMs);
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`${index.path}: origin answered ${res.status}`);
  }
  const text = await bodyText(res, index.path);
  const root = listRoot(index.path, index.kind, index.root);
  return index.kind === "sha256sums" ? parseSha256Sums(text, root) : parsePackages(text, root);
}

/**
 * The origin's complete list from every configured index; sizes a list does not give (SHA256SUMS) are asked with
 * HEAD (a file the origin does not have is left out). Throws when an index cannot be read: the last good list stays.
 */
export async function readOriginFiles(fetchImpl: FetchLike, cfg: RedirectorConfig, known?: Catalog): Promise<OriginFile[]> {
  const lists = await Promise.all(cfg.indexes.map((i) => readIndex(fetchImpl, cfg.origin, i, cfg.scan_timeout_ms)));
  const byPath = new Map<string, OriginFile>();
  for (const f of lists.flat()) byPath.set(f.path, { ...byPath.get(f.path), ...f });
  const files = [...byPath.values()];
  const unsized = files.filter((f) => f.size === undefined);
  const gone = new Set<string>();
  await bounded(unsized, cfg.scan_concurrency, async (f) => {
    const was = known?.get(f.path);
    if (was?.size !== undefined && was.sha256 === f.sha256) {
      f.size = was.size; // same checksum: same file, same size
      return;
    }
    const res = await timed(fetchImpl, urlFor(cfg.origin, f.path), { method: "HEAD" }, cfg.scan_timeout_ms);
    const length = Number(res.headers.get("content-length"));
    if (res.ok && res.headers.has("content-length") && Number.isSafeInteger(length)) f.size = length;
    else if (res.status === 404 || res.status === 410) gone.add(f.path);
    else throw new Error(`${f.path}: origin answered HEAD with ${res.status}${res.ok ? " and no Content-Length" : ""}`);
  });
  return files.filter((f) => !gone.has(f.path));
}

/** `sha-256=:<base64>:` (RFC 9530) or `SHA-256=<base64>` (RFC 3230) in a response, as hex. */
export function digestOf(headers: Headers): string | undefined {
  const repr = /sha-256=:([A-Za-z0-9+/=]+):/i.exec(headers.get("repr-digest") ?? "")?.[1];
  const old = /sha-256=([A-Za-z0-9+/=]+)/i.exec(headers.get("digest") ?? "")?.[1];
  const b64 = repr ?? old;
  if (!b64) return undefined;
  let bin: string;
  try {
    bin = atob(b64);
  } catch {
    return undefined; // not base64: says nothing (and is no failure of the mirror)
  }
  if (bin.length !== 32) return undefined;
  let hex = "";
  for (let i = 0; i < bin.length; i++) hex += bin.charCodeAt(i).toString(16).padStart(2, "0");
  return hex;
}

/** The files one round checks on `m`: not known present (newest first), then the rest from `cursor` on. */
export function filesToCheck(m: MirrorState, catalog: Catalog, budget: number, cursor: number): { ids: number[]; cursor: number } {
  const ids: number[] = [];
  const missing = catalog.files.filter((f) => f.listed && f.size !== undefined && m.files[f.id] !== FileState.Present && m.files[f.id] !== FileState.NotCarried);
  missing.sort((a, b) => b.firstSeen - a.firstSeen || b.id - a.id);
  for (const f of missing.slice(0, Math.ceil(budget / 2))) ids.push(f.id);
  const taken = new Set(ids);
  const n = catalog.size;
  let c = cursor % Math.max(1, n);
  for (let seen = 0; seen < n && ids.length < budget; seen++, c = (c + 1) % n) {
    const f = catalog.files[c]!;
    if (!f.listed || f.size === undefined || taken.has(c) || m.files[c] === FileState.NotCarried) continue;
    ids.push(c);
  }
  return { ids, cursor: c };
}

/** One scan round of one mirror. Failures (connection, timeout, 5xx) count; enough of them in a row end the round. */
export async function scanMirror(
  fetchImpl: FetchLike,
  m: MirrorState,
  catalog: Catalog,
  cfg: ScanSettings,
  opts: { now: () => number; cursor: number; originTrace?: string },
): Promise<{ cursor: number; checked: number }> {
  const base = m.config.url;
  const fail = (reason: string) => m.recordFailure(reason);
  const headers = { "user-agent": scanUserAgent(cfg.name) };
  if (m.config.trace) {
    try {
      const res = await timed(fetchImpl, urlFor(base, m.config.trace), { headers }, cfg.scan_timeout_ms);
      if (res.status >= 500) {
        await res.body?.cancel();
        fail(`trace: ${res.status}`);
      } else {
        const text = res.ok ? (await res.text()).trim() : (await res.body?.cancel(), "");
        m.synced = text !== "" && opts.originTrace !== undefined && text === opts.originTrace.trim();
        m.recordSuccess();
      }
    } catch (err) {
      m.synced = false;
      fail(`trace: ${(err as Error).message}`);
    }
  }
  const { ids, cursor } = filesToCheck(m, catalog, cfg.scan_files_per_round, opts.cursor);
  let checked = 0;
  await bounded(ids, cfg.scan_concurrency, async (id) => {
    if (m.failures >= cfg.max_failures && checked > 0) return; // down: the next round tries again
    const f = catalog.files[id]!;
    try {
      const res = await timed(fetchImpl, urlFor(base, f.path), { method: "HEAD", headers }, cfg.scan_timeout_ms);
      await res.body?.cancel();
      checked++;
      if (res.status === 404 || res.status === 410) return m.recordFile(id, FileState.Absent);
      if (!res.ok) return fail(`HEAD ${f.path}: ${res.status}`);
      const length = Number(res.headers.get("content-length"));
      const digest = digestOf(res.headers);
      const right = res.headers.has("content-length") && length === f.size && (digest === undefined || f.sha256 === undefined || digest === f.sha256);
      m.recordFile(id, right ? FileState.Present : FileState.Wrong);
    } catch (err) {
      checked++;
      fail(`HEAD ${f.path}: ${(err as Error).message}`);
    }
  });
  m.lastScan = opts.now();
  return { cursor, checked };
}
