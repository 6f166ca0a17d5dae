/**
 * Purging without scanning the store. A purge by prefix, tag, host or everything is a record "entries stored
 * before time T under this selector are gone (hard) or stale (soft)", checked when an entry is read; records are few
 * and survive restarts in the store. A purge by URL acts on the stored entry itself (see the engine).
 */
import type { EntryMeta } from "./entry.ts";

export interface PurgeMark {
  /** ms on the cache's clock: entries stored at or before it are affected. */
  at: number;
  soft: boolean;
}

export interface PurgeLog {
  all?: PurgeMark;
  hosts: Record<string, PurgeMark>;
  /** Key prefixes (host + path prefix). */
  prefixes: Record<string, PurgeMark>;
  tags: Record<string, PurgeMark>;
}

/** What an operator asks to purge. URLs are absolute; prefixes are absolute URLs too. */
export interface PurgeRequest {
  urls?: string[];
  prefixes?: string[];
  tags?: string[];
  hosts?: string[];
  all?: boolean;
  soft?: boolean;
}

export function emptyPurgeLog(): PurgeLog {
  return { hosts: {}, prefixes: {}, tags: {} };
}

/** Most records a log keeps per selector kind; the oldest go first (their entries are long gone by then). */
const MAX_RECORDS = 10_000;

/** The log with a purge request's selectors recorded at `now` (URLs are not logged: the engine handles them). */
export function recordPurge(log: PurgeLog, req: PurgeRequest, now: number, keyOf: (url: URL) => string): PurgeLog {
  const mark: PurgeMark = { at: now, soft: !!req.soft };
  const next: PurgeLog = {
    all: log.all,
    hosts: { ...log.hosts },
    prefixes: { ...log.prefixes },
    tags: { ...log.tags },
  };
  if (req.all) next.all = mark;
  for (const h of req.hosts ?? []) next.hosts[h.toLowerCase()] = mark;
  for (const p of req.prefixes ?? []) next.prefixes[keyOf(new URL(p))] = mark;
  for (const t of req.tags ?? []) next.tags[t] = mark;
  for (const kind of ["hosts", "prefixes", "tags"] as const) next[kind] = bounded(next[kind]);
  return next;
}

function bounded(records: Record<string, PurgeMark>): Record<string, PurgeMark> {
  const entries = Object.entries(records);
  if (entries.length <= MAX_RECORDS) return records;
  entries.sort((a, b) => b[1].at - a[1].at);
  return Object.fromEntries(entries.slice(0, MAX_RECORDS));
}

/** How a purge affects an entry: "hard" (gone), "soft" (stale, must revalidate) or undefined (untouched). */
export function purgeEffect(log: PurgeLog, meta: EntryMeta): "hard" | "soft" | undefined {
  const stored = meta.responseTime;
  let effect: "hard" | "soft" | undefined;
  const consider = (mark: PurgeMark | undefined) => {
    if (!mark || stored > mark.at) return;
    if (!mark.soft) effect = "hard";
    else if (effect === undefined) effect = "soft";
  };
  consider(log.all);
  consider(log.hosts[hostOfKey(meta.key)]);
  for (const tag of meta.tags) consider(log.tags[tag]);
  for (const prefix in log.prefixes) if (meta.key.startsWith(prefix)) consider(log.prefixes[prefix]);
  return effect;
}

/** A key is host + path + query; the host part, without a port. */
function hostOfKey(key: string): string {
  const slash = key.indexOf("/");
  return (slash < 0 ? key : key.slice(0, slash)).replace(/:\d+$/, "");
}

/** Validates a purge request body; a message naming the problem, or the request. */
export function parsePurgeRequest(body: unknown): PurgeRequest | string {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "the body must be a JSON object";
  const b = body as Record<string, unknown>;
  const known = new Set(["urls", "prefixes", "tags", "hosts", "all", "soft", "fanout"]);
  for (const k of Object.keys(b)) if (!known.has(k)) return `unknown field "${k}"`;
  const req: PurgeRequest = {};
  for (const k of ["urls", "prefixes", "tags", "hosts"] as const) {
    const v = b[k];
    if (v === undefined) continue;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string" || !x)) return `"${k}" must be a list of non-empty strings`;
    if (v.length > 1000) return `"${k}" may list at most 1000 items per call`;
    if (k === "urls" || k === "prefixes") {
      for (const u of v as string[]) {
        if (!URL.canParse(u) || !/^https?:$/.test(new URL(u).protocol)) return `"${k}" must hold absolute http(s) URLs: ${u}`;
      }
    }
    req[k] = v as string[];
  }
  for (const k of ["all", "soft"] as const) {
    if (b[k] !== undefined && typeof b[k] !== "boolean") return `"${k}" must be true or false`;
    if (b[k] !== undefined) req[k] = b[k] as boolean;
  }
  if (!req.all && !req.urls?.length && !req.prefixes?.length && !req.tags?.length && !req.hosts?.length) {
    return "nothing to purge: give urls, prefixes, tags, hosts or all";
  }
  return req;
}
