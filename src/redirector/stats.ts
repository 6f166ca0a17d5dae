/**
 * The redirector's statistics per UTC day: requests by file, mirror, client country and CDN reason, as one JSON
 * document per day (mirrorbits keeps the same in Redis). Prometheus has the per-mirror and per-country counters; per
 * file would be 100,000 series, so files are counted here only. Bounded: files by the origin's catalog (a path not
 * in it is counted once under `not_listed`, whoever asks), mirrors by the config, countries by ISO 3166 (a value that
 * is not two letters counts as "unknown"), reasons by the code. Pure: the host writes the documents (stats_dir).
 */
import type { Catalog } from "./catalog.ts";

const DAY_MS = 86_400_000;

/** What a request came to. */
export type Outcome = "mirror" | "cdn" | "metalink" | "apt-list";

interface FileCounts {
  mirror: number;
  cdn: number;
  metalink: number;
}

/** The document of one day (also what `?day=` answers). */
export interface DayReport {
  day: string;
  /** From the first to the last minute counted (a restart mid-day continues the same document). */
  updated: string;
  requests: Record<Outcome, number>;
  mirrors: Record<string, number>;
  countries: Record<string, number>;
  cdn_reasons: Record<string, number>;
  /** Requests for paths outside the origin's lists. */
  not_listed: number;
  /** Every listed file asked that day, most asked first. */
  files: Array<{ path: string } & FileCounts>;
}

export const dayOf = (ms: number) => new Date(Math.floor(ms / DAY_MS) * DAY_MS).toISOString().slice(0, 10);

export class DailyStats {
  private day: string;
  private requests: Record<Outcome, number> = { mirror: 0, cdn: 0, metalink: 0, "apt-list": 0 };
  private mirrors = new Map<string, number>();
  private countries = new Map<string, number>();
  private reasons = new Map<string, number>();
  private notListed = 0;
  /** By catalog path (ids are per process; paths survive a restart). */
  private files = new Map<string, FileCounts>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
    this.day = dayOf(now());
  }

  /**
   * Counts one request. `path` with `listed` for a file in the catalog (counted per file), `listed: false` for a path
   * outside it (counted together); `mirror` for a redirect; `reason` for the CDN.
   * Returns the finished day's report when this request is the first of a new day (the host writes it).
   */
  record(outcome: Outcome, o: { path?: string; listed?: boolean; mirror?: string; reason?: string; country?: string }): DayReport | undefined {
    const finished = this.roll();
    this.requests[outcome]++;
    const country = o.country && /^[A-Z]{2}$/.test(o.country) ? o.country : "unknown";
    this.countries.set(country, (this.countries.get(country) ?? 0) + 1);
    if (o.mirror !== undefined) this.mirrors.set(o.mirror, (this.mirrors.get(o.mirror) ?? 0) + 1);
    if (o.reason !== undefined) this.reasons.set(o.reason, (this.reasons.get(o.reason) ?? 0) + 1);
    if (o.path !== undefined && o.listed && outcome !== "apt-list") {
      let f = this.files.get(o.path);
      if (!f) this.files.set(o.path, (f = { mirror: 0, cdn: 0, metalink: 0 }));
      f[outcome]++;
    } else if (o.listed === false) this.notListed++;
    return finished;
  }

  /** The day so far. */
  report(): DayReport {
    const obj = (m: Map<string, number>) => Object.fromEntries([...m].sort((a, b) => b[1] - a[1]));
    return {
      day: this.day,
      updated: new Date(this.now()).toISOString(),
      requests: { ...this.requests },
      mirrors: obj(this.mirrors),
      countries: obj(this.countries),
      cdn_reasons: obj(this.reasons),
      not_listed: this.notListed,
      files: [...this.files]
        .map(([path, c]) => ({ path, ...c }))
        .sort((a, b) => b.mirror + b.cdn + b.metalink - (a.mirror + a.cdn + a.metalink) || (a.path < b.path ? -1 : 1)),
    };
  }

  /** A new day: the finished one's report, and counting starts again. Called by `record`; the host calls it on a timer too. */
  roll(): DayReport | undefined {
    const today = dayOf(this.now());
    if (today === this.day) return undefined;
    const finished = this.report();
    finished.updated = `${finished.day}T23:59:59.999Z`;
    this.day = today;
    this.requests = { mirror: 0, cdn: 0, metalink: 0, "apt-list": 0 };
    this.mirrors = new Map();
    this.countries = new Map();
    this.reasons = new Map();
    this.notListed = 0;
    this.files = new Map();
    return finished;
  }

  /**
   * Continues today's document after a restart (the host's last write of it): counts are added, files only where
   * the catalog still lists them, so a document that is not one of ours changes at most counts, never the bounds.
   */
  resume(saved: unknown, catalog: Catalog): boolean {
    const r = saved as Partial<DayReport> | null;
    if (!r || typeof r !== "object" || r.day !== this.day) return false;
    const n = (v: unknown) => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : 0);
    for (const k of Object.keys(this.requests) as Outcome[]) this.requests[k] += n(r.requests?.[k]);
    const add = (into: Map<string, number>, from: unknown, keep: (k: string) => boolean) => {
      if (!from || typeof from !== "object") return;
      for (const [k, v] of Object.entries(from)) if (keep(k)) into.set(k, (into.get(k) ?? 0) + n(v));
    };
    add(this.mirrors, r.mirrors, (k) => k.length <= 64);
    add(this.countries, r.countries, (k) => k === "unknown" || /^[A-Z]{2}$/.test(k));
    add(this.reasons, r.cdn_reasons, (k) => /^[a-z-]{1,32}$/.test(k));
    this.notListed += n(r.not_listed);
    if (Array.isArray(r.files)) {
      for (const f of r.files as unknown[]) {
        const path = (f as { path?: unknown })?.path;
        if (typeof path !== "string" || !catalog.get(path)) continue;
        const c = this.files.get(path) ?? { mirror: 0, cdn: 0, metalink: 0 };
        const g = f as Partial<FileCounts>;
        c.mirror += n(g.mirror);
        c.cdn += n(g.cdn);
        c.metalink += n(g.metalink);
        this.files.set(path, c);
      }
    }
    return true;
  }
}
