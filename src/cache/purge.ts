/**
 * Purging without scanning the store. A purge is a record "entries stored before time T under this selector are
 * gone (hard) or stale (soft)", checked when an entry is read: a lookup per URL, host and tag of the entry, plus one
 * comparison per prefix record. The log lives in the store, so it survives restarts and reaches every process
 * (and every process's memory tier) of an edge box. Only operators write it (purges are authenticated): bounded in
 * records per selector kind, and what falls off the end still counts, as a soft purge of everything before it.
 */
import type { EntryMeta } from "./entry.ts";

/** ms on the cache's clock of the latest hard and the latest soft purge of one selector: entries stored before are affected. */
export interface PurgeMark {
  hard?: number;
  soft?: number;
}

export interface PurgeLog {
  /**
   * Not a purge: whether the edge is draining (leaving DNS answers while still serving), and since when. It rides in
   * the same shared record so every process of the box agrees within a second.
   */
  drain?: { draining: boolean; at: number };
  /** Not a purge either: the box's anycast announcement as its announcer last reported it (src/anycast/). */
  anycast?: { state: "announced" | "withdrawn"; at: number };
  /** Not a purge either: how far the box's control agent has applied the control stream (see src/control/). */
  control?: ControlMark;
  all?: PurgeMark;
  /**
   * Records dropped to keep the log bounded, as one soft purge: entries stored before the newest of them revalidate,
   * so nothing a forgotten record purged is ever served as fresh.
   */
  floor?: number;
  /** Primary cache keys (host + path + query), all variants. */
  urls: Record<string, PurgeMark>;
  hosts: Record<string, PurgeMark>;
  /** Key prefixes (host + path prefix). */
  prefixes: Record<string, PurgeMark>;
  tags: Record<string, PurgeMark>;
}

/**
 * The control agent's mark: it applied the stream `stream` (its creation time names it) up to sequence `seq`, and,
 * when `boot` is set, had replayed everything pending for that box start (the edge's BOOT_ID) when it wrote this.
 */
export interface ControlMark {
  stream: string;
  seq: number;
  boot?: string;
  /** ms on the cache's clock: the later mark wins a merge. */
  at: number;
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
  return { urls: {}, hosts: {}, prefixes: {}, tags: {} };
}

/**
 * Most records a log keeps per selector kind, and most bytes of their keys (long URLs: 10,000 of 8 KB would make a
 * log of 80 MB, read and written whole); the oldest go first, into the floor.
 */
const MAX_RECORDS = 10_000;
const MAX_KEY_BYTES = 1024 * 1024;

/**
 * The log with a purge request's selectors recorded at `now`. `keyOf` turns a URL into the primary cache key
 * (with the query string as the rules keep it) and `prefixKeyOf` a prefix URL into a key prefix.
 */
export function recordPurge(
  log: PurgeLog,
  req: PurgeRequest,
  now: number,
  keyOf: (url: URL) => string,
  prefixKeyOf: (url: URL) => string,
): PurgeLog {
  const kind = req.soft ? "soft" : "hard";
  const marked = (m: PurgeMark | undefined): PurgeMark => ({ ...m, [kind]: now });
  const next: PurgeLog = {
    drain: log.drain,
    anycast: log.anycast,
    control: log.control,
    all: req.all ? marked(log.all) : log.all,
    floor: log.floor,
    urls: Object.fromEntries(Object.entries(log.urls)),
    hosts: Object.fromEntries(Object.entries(log.hosts)),
    prefixes: Object.fromEntries(Object.entries(log.prefixes)),
    tags: Object.fromEntries(Object.entries(log.tags)),
  };
  const mark = (records: Record<string, PurgeMark>, key: string) => setOwn(records, key, marked(own(records, key)));
  for (const u of req.urls ?? []) mark(next.urls, keyOf(new URL(u)));
  for (const h of req.hosts ?? []) mark(next.hosts, h.toLowerCase());
  for (const p of req.prefixes ?? []) mark(next.prefixes, prefixKeyOf(new URL(p)));
  for (const t of req.tags ?? []) mark(next.tags, t);
  for (const k of ["urls", "hosts", "prefixes", "tags"] as const) bound(next, k);
  return next;
}

const latest = (m: PurgeMark) => Math.max(m.hard ?? 0, m.soft ?? 0);

/**
 * Keeps the newest records of one kind, at most MAX_RECORDS and MAX_KEY_BYTES of keys (counted in UTF-16 units);
 * the newest time among the dropped raises the floor.
 */
function bound(log: PurgeLog, kind: "urls" | "hosts" | "prefixes" | "tags") {
  const entries = Object.entries(log[kind]);
  let bytes = 0;
  for (const [key] of entries) bytes += key.length;
  if (entries.length <= MAX_RECORDS && bytes <= MAX_KEY_BYTES) return;
  entries.sort((a, b) => latest(b[1]) - latest(a[1]));
  let kept = 0;
  bytes = 0;
  while (kept < entries.length && kept < MAX_RECORDS && bytes + entries[kept]![0].length <= MAX_KEY_BYTES) bytes += entries[kept++]![0].length;
  let floor = log.floor ?? 0;
  for (let i = kept; i < entries.length; i++) floor = Math.max(floor, latest(entries[i]![1]));
  log.floor = floor;
  log[kind] = Object.fromEntries(entries.slice(0, kept));
}

/**
 * The records are plain JSON objects whose keys come from requests: read and write them as own properties only, so
 * a tag or host named `constructor`, `toString` or `__proto__` is a key like any other.
 */
function own(records: Record<string, PurgeMark>, key: string): PurgeMark | undefined {
  return Object.hasOwn(records, key) ? records[key] : undefined;
}

function setOwn(records: Record<string, PurgeMark>, key: string, mark: PurgeMark) {
  Object.defineProperty(records, key, { value: mark, enumerable: true, writable: true, configurable: true });
}

/**
 * How a purge affects an entry: "hard" (gone), "soft" (stale, must revalidate) or undefined (untouched).
 * `unconfirmed` is one more mark to apply (the control plane's catch-up gate, `controlGate`).
 */
export function purgeEffect(
  log: PurgeLog,
  meta: Pick<EntryMeta, "key" | "responseTime" | "tags">,
  unconfirmed?: PurgeMark,
): "hard" | "soft" | undefined {
  const stored = meta.responseTime;
  let effect: "hard" | "soft" | undefined;
  const consider = (mark: PurgeMark | undefined) => {
    if (!mark) return;
    if (stored < (mark.hard ?? -Infinity)) effect = "hard";
    else if (effect === undefined && stored < (mark.soft ?? -Infinity)) effect = "soft";
  };
  consider(unconfirmed);
  consider(log.all);
  if (log.floor !== undefined) consider({ soft: log.floor });
  consider(own(log.urls, meta.key));
  consider(own(log.hosts, hostOfKey(meta.key)));
  for (const tag of meta.tags) consider(own(log.tags, tag));
  for (const prefix of Object.keys(log.prefixes)) if (meta.key.startsWith(prefix)) consider(own(log.prefixes, prefix));
  return effect;
}

/**
 * The catch-up gate of an edge box on the control plane: until its agent has marked the log caught up for this box
 * start (`boot`), entries stored before the start are stale (a soft purge): they may have been purged while the box
 * was away. Entries fetched since come from the origin after the start, like any other edge's. `staleBefore`: the
 * box's lease has run out (it cannot hear the control plane), so everything stored before then is stale too.
 */
export function controlGate(log: PurgeLog, boot: { id: string; at: number } | undefined, staleBefore?: number): PurgeMark | undefined {
  const afterBoot = !boot || log.control?.boot === boot.id ? undefined : boot.at;
  const soft = Math.max(afterBoot ?? -Infinity, staleBefore ?? -Infinity);
  return soft === -Infinity ? undefined : { soft };
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

/** Two logs merged: for each selector the later hard and the later soft time, so no process loses another's purge. */
export function mergePurgeLogs(a: PurgeLog, b: PurgeLog): PurgeLog {
  const max = (x?: number, y?: number) => (x === undefined ? y : y === undefined ? x : Math.max(x, y));
  const later = (x?: PurgeMark, y?: PurgeMark): PurgeMark | undefined => {
    if (!x || !y) return x ?? y;
    const hard = max(x.hard, y.hard);
    const soft = max(x.soft, y.soft);
    return { ...(hard !== undefined ? { hard } : {}), ...(soft !== undefined ? { soft } : {}) };
  };
  const mergeMap = (x: Record<string, PurgeMark>, y: Record<string, PurgeMark>) => {
    const out = Object.fromEntries(Object.entries(x));
    for (const [k, v] of Object.entries(y)) setOwn(out, k, later(own(out, k), v)!);
    return out;
  };
  const newer = <T extends { at: number }>(x?: T, y?: T) => (!x ? y : !y ? x : y.at > x.at ? y : x);
  const drain = newer(a.drain, b.drain);
  const anycast = newer(a.anycast, b.anycast);
  const control = newer(a.control, b.control);
  const all = later(a.all, b.all);
  const floor = max(a.floor, b.floor);
  const merged: PurgeLog = {
    ...(drain ? { drain } : {}),
    ...(anycast ? { anycast } : {}),
    ...(control ? { control } : {}),
    ...(all ? { all } : {}),
    ...(floor !== undefined ? { floor } : {}),
    urls: mergeMap(a.urls ?? {}, b.urls ?? {}),
    hosts: mergeMap(a.hosts ?? {}, b.hosts ?? {}),
    prefixes: mergeMap(a.prefixes ?? {}, b.prefixes ?? {}),
    tags: mergeMap(a.tags ?? {}, b.tags ?? {}),
  };
  for (const k of ["urls", "hosts", "prefixes", "tags"] as const) bound(merged, k);
  return merged;
}

/**
 * A stored record as this version reads it: earlier versions kept one `{at, soft}` per selector, read here as a
 * hard or a soft time.
 */
export function readPurgeLog(raw: unknown): PurgeLog {
  const log = { ...emptyPurgeLog(), ...(raw as Partial<PurgeLog>) };
  const mark = (m: unknown): PurgeMark | undefined => {
    if (!m || typeof m !== "object") return undefined;
    const o = m as { at?: unknown; soft?: unknown; hard?: unknown };
    if (typeof o.at === "number") return o.soft === true ? { soft: o.at } : { hard: o.at };
    return {
      ...(typeof o.hard === "number" ? { hard: o.hard } : {}),
      ...(typeof o.soft === "number" ? { soft: o.soft } : {}),
    };
  };
  const marks = (r: unknown) => {
    const out: Record<string, PurgeMark> = {};
    for (const [k, v] of Object.entries(r && typeof r === "object" ? r : {})) {
      const m = mark(v);
      if (m) setOwn(out, k, m);
    }
    return out;
  };
  return {
    ...log,
    all: mark(log.all),
    urls: marks(log.urls),
    hosts: marks(log.hosts),
    prefixes: marks(log.prefixes),
    tags: marks(log.tags),
  };
}

/** Whether `b` holds a mark `a` lacks or has older (then `a`'s holder should write the merge back). */
export function purgeLogsDiffer(a: PurgeLog, b: PurgeLog): boolean {
  if (purgeLogCovers(a, b)) return false;
  // Both sides through the merge: the same marks in the same order, however each log was built.
  return JSON.stringify(mergePurgeLogs(a, b)) !== JSON.stringify(mergePurgeLogs(a, emptyPurgeLog()));
}

/**
 * Whether `a` already holds every mark of `b`, as late or later (then merging `b` into `a` changes nothing): one
 * pass without copying, so a process that reads back a record holding its own marks (the usual case) does not merge
 * two logs of thousands of records. False when unsure (a record of `b` that `a` dropped to its floor): the caller
 * then merges.
 */
export function purgeLogCovers(a: PurgeLog, b: PurgeLog): boolean {
  const markCovers = (x: PurgeMark | undefined, y: PurgeMark | undefined) =>
    !y || (!!x && (y.hard === undefined || (x.hard ?? -Infinity) >= y.hard) && (y.soft === undefined || (x.soft ?? -Infinity) >= y.soft));
  // The merge keeps `a`'s drain, anycast and control records unless `b`'s are later.
  const newerOrSame = <T extends { at: number }>(x?: T, y?: T) => !y || (!!x && x.at >= y.at);
  if (!newerOrSame(a.drain, b.drain) || !newerOrSame(a.anycast, b.anycast) || !newerOrSame(a.control, b.control)) return false;
  if (!markCovers(a.all, b.all)) return false;
  if (b.floor !== undefined && (a.floor ?? -Infinity) < b.floor) return false;
  for (const kind of ["urls", "hosts", "prefixes", "tags"] as const) {
    const records = a[kind];
    for (const key of Object.keys(b[kind])) if (!markCovers(own(records, key), own(b[kind], key))) return false;
  }
  return true;
}
