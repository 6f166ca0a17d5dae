/**
 * What the redirector knows of one mirror: where it is, which clients it serves, which of the origin's files it
 * carries and has (one byte per file id), and its health from scans (consecutive failures; one good answer restores
 * it). Pure: scans (scan.ts) and the chooser (choose.ts) read and write it.
 */
import type { MirrorConfig } from "../config/redirector-schema.ts";
import { globToRegExp } from "../cache/rules.ts";
import type { Catalog } from "./catalog.ts";

/** Per file: what the last check of the mirror found. */
export const FileState = {
  /** Never checked (has it only when the mirror's trace says it is synced). */
  Unknown: 0,
  /** Right size (and checksum where the mirror said one). */
  Present: 1,
  /** 404/410. */
  Absent: 2,
  /** Another size or checksum: an old or broken copy. */
  Wrong: 3,
  /** Outside the mirror's `paths`. */
  NotCarried: 4,
} as const;
export type FileState = (typeof FileState)[keyof typeof FileState];

export interface MirrorLocation {
  lat?: number;
  lon?: number;
  country?: string;
  continent?: string;
  asn?: number;
}

export class MirrorState {
  readonly config: MirrorConfig;
  readonly location: MirrorLocation;
  /** Index in the redirector's list (stable while the config is). */
  readonly index: number;
  /** Catalog ids given a state so far (`files` has room for more). */
  private followed = 0;
  /** FileState per catalog id: one byte per file (no per-file times: 8 more bytes × 100,000 files × 300 mirrors). */
  files = new Uint8Array(0);
  /** Consecutive failed requests (connection errors, timeouts, 5xx). */
  failures = 0;
  lastError?: string;
  lastScan?: number;
  /** The mirror's trace file equals the origin's: unchecked files count as present. */
  synced = false;
  private readonly carries: RegExp[];
  /** Files it holds a wrong copy of (few: kept apart so the apt list can leave such a mirror out). */
  private readonly wrong = new Set<number>();

  constructor(config: MirrorConfig, index: number, location: MirrorLocation) {
    this.config = config;
    this.index = index;
    this.location = location;
    this.carries = config.paths.map(globToRegExp);
  }

  /** Up: not taken out by failures, enabled, not in maintenance. */
  usable(maxFailures: number): boolean {
    return this.config.enabled && !this.config.maintenance && this.failures < maxFailures;
  }

  /** Whether the mirror may be sent a client for file `id`. */
  has(id: number): boolean {
    const s = this.files[id];
    return s === FileState.Present || (s === FileState.Unknown && this.synced);
  }

  /** Grows the per-file arrays to the catalog and marks new or changed files (their old checks no longer hold). */
  follow(catalog: Catalog, changed: number[] = []) {
    const n = catalog.size;
    if (this.files.length < n) {
      const files = new Uint8Array(Math.max(n, this.files.length * 2));
      files.set(this.files);
      this.files = files;
    }
    // Ids past the ones followed so far are new files (the array has room for more than it followed).
    for (let id = this.followed; id < n; id++) this.files[id] = this.carriesPath(catalog.files[id]!.path) ? FileState.Unknown : FileState.NotCarried;
    this.followed = Math.max(this.followed, n);
    for (const id of changed) {
      this.files[id] = this.carriesPath(catalog.files[id]!.path) ? FileState.Unknown : FileState.NotCarried;
      this.wrong.delete(id);
    }
  }

  /** Takes the checks of the same mirror (same url and paths) from before a reload: files, health, trace state. */
  takeChecksFrom(old: MirrorState) {
    this.files = old.files.slice();
    this.followed = old.followed;
    for (const id of old.wrong) this.wrong.add(id);
    this.failures = old.failures;
    this.lastError = old.lastError;
    this.lastScan = old.lastScan;
    this.synced = old.synced;
  }

  carriesPath(path: string): boolean {
    return this.carries.some((re) => re.test(path));
  }

  /** A check of file `id` answered: its state, and the mirror is healthy again. */
  recordFile(id: number, state: FileState) {
    this.files[id] = state;
    if (state === FileState.Wrong) this.wrong.add(id);
    else this.wrong.delete(id);
    this.failures = 0;
    this.lastError = undefined;
  }

  /** Whether it holds a wrong copy of a listed file under `prefix` (apt checks every file: one bad copy fails a download). */
  hasWrongUnder(prefix: string, catalog: Catalog): boolean {
    for (const id of this.wrong) {
      const f = catalog.files[id];
      if (f?.listed && f.path.startsWith(prefix)) return true;
    }
    return false;
  }

  recordFailure(reason: string) {
    this.failures++;
    this.lastError = reason;
  }

  recordSuccess() {
    this.failures = 0;
    this.lastError = undefined;
  }

  /** Counts by state over the listed files it carries (status page, mirror list). */
  summary(catalog: Catalog): { carried: number; present: number; absent: number; wrong: number; unknown: number } {
    const s = { carried: 0, present: 0, absent: 0, wrong: 0, unknown: 0 };
    for (const f of catalog.files) {
      if (!f.listed) continue;
      const st = this.files[f.id];
      if (st === FileState.NotCarried) continue;
      s.carried++;
      if (st === FileState.Present) s.present++;
      else if (st === FileState.Absent) s.absent++;
      else if (st === FileState.Wrong) s.wrong++;
      else s.unknown++;
    }
    return s;
  }
}

/** Whether a mirror takes a client of this country / continent / AS (its allow and refuse lists). */
export function servesClient(m: MirrorConfig, client: MirrorLocation): boolean {
  const { country, continent, asn } = client;
  if (country && m.exclude_countries.includes(country)) return false;
  if (continent && m.exclude_continents.includes(continent)) return false;
  if (asn !== undefined && m.exclude_asns.includes(asn)) return false;
  const restricted = m.countries.length || m.continents.length || m.asns.length;
  if (!restricted) return true;
  return (
    (country !== undefined && m.countries.includes(country)) ||
    (continent !== undefined && m.continents.includes(continent)) ||
    (asn !== undefined && m.asns.includes(asn))
  );
}
