/**
 * The mirror redirector's status document (`GET /.well-known/cdn/mirrors`): every mirror's health and what its
 * checks found. The redirector writes it (src/redirector/redirector.ts); DNS nodes read it for their status page
 * (src/dns/operator.ts), through `parseMirrorsStatus`, which takes only what fits this shape, bounded.
 */
export interface MirrorStatus {
  name: string;
  url: string;
  country?: string;
  enabled: boolean;
  maintenance: boolean;
  /** Gets clients: enabled, not in maintenance, fewer than max_failures failures in a row. */
  up: boolean;
  failures: number;
  error?: string;
  /** Its trace file equals the origin's (undefined: no trace configured). */
  synced?: boolean;
  lastScan?: string;
  /** Listed files it carries (its `paths`), and what the last check of each found. */
  carried: number;
  present: number;
  absent: number;
  wrong: number;
  unknown: number;
}

export interface MirrorsStatus {
  /** Files in the origin's lists. */
  files: number;
  origin: { read?: string; error?: string };
  mirrors: MirrorStatus[];
}

const MAX_MIRRORS = 10_000;
const text = (v: unknown, max = 300) => (typeof v === "string" ? v.slice(0, max) : undefined);
const count = (v: unknown) => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : 0);

/** The document as a DNS node may show it; undefined when it is not one. */
export function parseMirrorsStatus(json: unknown): MirrorsStatus | undefined {
  const d = json as Partial<Record<keyof MirrorsStatus, unknown>> | null;
  if (!d || typeof d !== "object" || !Array.isArray(d.mirrors)) return undefined;
  const origin = (d.origin ?? {}) as Record<string, unknown>;
  const mirrors: MirrorStatus[] = [];
  for (const raw of d.mirrors.slice(0, MAX_MIRRORS)) {
    const m = raw as Record<string, unknown> | null;
    const name = text(m?.name, 64);
    if (!m || !name) continue;
    mirrors.push({
      name,
      url: text(m.url) ?? "",
      country: text(m.country, 2),
      enabled: m.enabled === true,
      maintenance: m.maintenance === true,
      up: m.up === true,
      failures: count(m.failures),
      error: text(m.error),
      synced: typeof m.synced === "boolean" ? m.synced : undefined,
      lastScan: text(m.lastScan, 40),
      carried: count(m.carried),
      present: count(m.present),
      absent: count(m.absent),
      wrong: count(m.wrong),
      unknown: count(m.unknown),
    });
  }
  return { files: count(d.files), origin: { read: text(origin.read, 40), error: text(origin.error) }, mirrors };
}
