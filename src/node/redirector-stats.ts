/**
 * The redirector's daily statistics on disk ([redirector] stats_dir): one JSON document per UTC day,
 * `YYYY-MM-DD.json`, written whole (temporary file, then rename) when the day ends and every minute for today (so a
 * restart continues today's counts); documents older than `stats_days` are deleted. Also the answer to
 * `GET /.well-known/cdn/mirrors/stats[?day=YYYY-MM-DD]` (today's counts live, an earlier day from its file).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Redirector } from "../redirector/redirector.ts";
import { dayOf, type DayReport } from "../redirector/stats.ts";

const DAY_FILE = /^(\d{4}-\d{2}-\d{2})\.json$/;
const CHECKPOINT_MS = 60_000;

export class StatsFiles {
  private readonly dir: string | undefined;
  private readonly keepDays: number;
  private readonly log: (line: string) => void;

  constructor(dir: string | undefined, keepDays: number, log: (line: string) => void) {
    this.dir = dir;
    this.keepDays = keepDays;
    this.log = log;
    if (dir) mkdirSync(dir, { recursive: true });
  }

  /** Writes a day's document whole, then deletes the ones past `stats_days`. */
  write(report: DayReport) {
    if (!this.dir) return;
    const file = join(this.dir, `${report.day}.json`);
    try {
      writeFileSync(`${file}.tmp`, JSON.stringify(report) + "\n");
      renameSync(`${file}.tmp`, file);
      const oldest = dayOf(Date.parse(`${report.day}T00:00:00Z`) - (this.keepDays - 1) * 86_400_000);
      for (const name of readdirSync(this.dir)) {
        const m = DAY_FILE.exec(name);
        if (m && m[1]! < oldest) rmSync(join(this.dir, name), { force: true });
      }
    } catch (err) {
      this.log(JSON.stringify({ redirector: "stats", error: `cannot write ${file}: ${(err as Error).message}` }));
    }
  }

  /** A day's document as written; undefined when there is none (or no stats_dir). */
  read(day: string): unknown {
    if (!this.dir || !/^\d{4}-\d{2}-\d{2}$/.test(day)) return undefined;
    try {
      return JSON.parse(readFileSync(join(this.dir, `${day}.json`), "utf8"));
    } catch {
      return undefined;
    }
  }

  /** Continues today's document from its file (a restart), then writes today's every minute; returns the stopper. */
  follow(current: () => Redirector): () => void {
    const r = current();
    if (r.stats.resume(this.read(r.stats.report().day), r.catalog)) this.log(JSON.stringify({ redirector: "stats", resumed: r.stats.report().day }));
    const checkpoint = () => {
      const stats = current().stats;
      const finished = stats.roll(); // a day may end with no request after midnight
      if (finished) this.write(finished);
      this.write(stats.report());
    };
    const timer = setInterval(checkpoint, CHECKPOINT_MS);
    timer.unref();
    return () => {
      clearInterval(timer);
      checkpoint();
    };
  }

  /** GET STATS_PATH: today's counts so far, or `?day=` from its file. */
  answer(request: Request, current: Redirector): Response {
    const day = new URL(request.url).searchParams.get("day");
    const today = current.stats.report();
    if (day !== null && day !== today.day) {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return Response.json({ error: "day must be YYYY-MM-DD" }, { status: 400 });
      const saved = this.read(day);
      if (saved === undefined) return Response.json({ error: this.dir ? `no statistics for ${day}` : "no stats_dir: only today's counts are kept" }, { status: 404 });
      return Response.json(saved, { headers: { "cache-control": "no-store" } });
    }
    return Response.json(today, { headers: { "cache-control": "no-store" } });
  }
}
