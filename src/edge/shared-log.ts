/**
 * The edge box's shared control record — the purge log and the drain flag — kept in the entry store, so it
 * survives restarts and every process of the box reads it. Each isolate holds a copy, re-read at most once a second
 * and merged (a merge that adds marks is written back, so no process loses another's purge).
 */
import { emptyPurgeLog, mergePurgeLogs, purgeLogCovers, purgeLogsDiffer, readPurgeLog, type PurgeLog } from "../cache/purge.ts";
import { PURGE_LOG_KEY } from "../contracts/store.ts";
import { freshRead } from "../store/client.ts";
import type { EntryStore } from "./store.ts";

/** Where the record lives in the store (no request key can start with a control character). */
const KEY = PURGE_LOG_KEY;
const TTL_SECONDS = 365 * 86_400;
/** How stale an isolate's copy of the box's shared state may be. */
const REFRESH_MS = 1000;

/**
 * A read of the box's shared state that requests wait for at most once a second, so each request sees what was stored
 * a second before it. A read is counted from when it started (what was stored before then, it saw): a read still under
 * way that started more than a second ago is not enough, and another starts beside it.
 */
export class PeriodicRead {
  /** When the newest read that ended had started. */
  private readFrom = -Infinity;
  private running: { startedAt: number; done: Promise<void> } | undefined;
  private readonly read: () => Promise<void>;

  /** `read` must not throw: a failed read counts as done (the next one is a second later, not at every request). */
  constructor(read: () => Promise<void>) {
    this.read = read;
  }

  get due(): boolean {
    return Date.now() - this.readFrom >= REFRESH_MS;
  }

  get never(): boolean {
    return this.readFrom === -Infinity;
  }

  /** Reads when due; `fresh`: a read that starts now (or started at this very millisecond) whether due or not. */
  run(fresh = false): Promise<void> {
    const now = Date.now();
    if (!fresh && !this.due) return Promise.resolve();
    const under = this.running;
    if (under && (fresh ? under.startedAt === now : now - under.startedAt < REFRESH_MS)) return under.done;
    const done: Promise<void> = this.read().finally(() => {
      this.readFrom = Math.max(this.readFrom, now);
      if (this.running?.done === done) this.running = undefined;
    });
    this.running = { startedAt: now, done };
    return done;
  }
}

/**
 * The newest purge-log sequence (LOG_SEQ_HEADER, `ID.N`) the store's answers to this isolate carried: the store bumps
 * it when a store of the log becomes visible, before that store is answered. A process whose copy of the log was read
 * before the sequence it last saw reads the log again before it judges an entry (SharedLog.behind), so a purge
 * another process answered is applied here from the first answer after it, not a second later.
 */
export class StoreLogSequence {
  private id = "";
  private n = -1;

  /** Takes in an answer's header (absent or malformed: nothing). */
  see(value: string | null): void {
    const m = value === null ? null : /^(.+)\.(\d+)$/.exec(value);
    if (!m) return;
    const n = Number(m[2]);
    if (m[1] !== this.id) {
      // Another store process (it restarted): its count starts again.
      this.id = m[1]!;
      this.n = n;
    } else if (n > this.n) this.n = n;
  }

  get current(): { id: string; n: number } {
    return { id: this.id, n: this.n };
  }

  /** Whether `seq` is as new as what was heard (no object made: asked on every lookup). */
  heardBy(seq: { id: string; n: number }): boolean {
    return seq.id === this.id && seq.n >= this.n;
  }
}

export class SharedLog {
  private readonly store: EntryStore;
  private log: PurgeLog = emptyPurgeLog();
  /** The stored record's text when this copy is exactly what it holds (as last written or read), else undefined. */
  private text: string | undefined;
  private readonly reads = new PeriodicRead(() => this.read());
  /** Size of the record as last read or written (a metric: it must stay small). */
  bytes = 0;

  /** The store's purge-log sequence as this isolate last heard it (several processes: see StoreLogSequence). */
  private readonly sequence: StoreLogSequence | undefined;
  /** The sequence this isolate had heard when its newest read of the log started (its copy is at least that new). */
  private readFrom = { id: "", n: -1 };
  private readonly freshRead = freshRead(() => this.read(true));

  constructor(store: EntryStore, sequence?: StoreLogSequence) {
    this.store = store;
    this.sequence = sequence;
  }

  /** Whether this copy may be older than a store of the log an answer of the store told of (then `catchUp`). */
  get behind(): boolean {
    return !!this.sequence && !this.sequence.heardBy(this.readFrom);
  }

  private covers(seq: { id: string; n: number }): boolean {
    return seq.id === this.readFrom.id && seq.n <= this.readFrom.n;
  }

  /**
   * Reads the log so the copy is as new as the sequence heard when this was called: waits for a read that started
   * after the call (concurrent callers share one; see freshRead). Throws when the store does not answer: the caller
   * must then not serve what the log could have purged.
   */
  async catchUp(): Promise<void> {
    if (!this.sequence) return;
    const target = this.sequence.current;
    if (this.covers(target)) return;
    await this.freshRead();
    if (!this.covers(target)) throw new Error("the purge log could not be read");
  }

  /** This isolate's copy (as of the last sync). */
  get current(): PurgeLog {
    return this.log;
  }

  /** Whether a re-read is due; before the first one, requests should wait for it (purges survive restarts). */
  get due(): boolean {
    return this.reads.due;
  }

  get neverSynced(): boolean {
    return this.reads.never;
  }

  /** Re-reads and merges the stored record when due; `force`: a read that starts now. */
  sync(force = false): Promise<void> {
    return this.reads.run(force);
  }

  /** `strict`: a failed read throws (catchUp), else it leaves the copy as it was. */
  private async read(strict = false): Promise<void> {
    const from = this.sequence?.current;
    try {
      const stored = await this.store.get(KEY);
      if (stored?.meta.kind !== "purge-log" || !stored.body) {
        await stored?.body?.cancel();
        await this.adopt(emptyPurgeLog(), undefined);
      } else {
        const text = await new Response(stored.body).text();
        this.bytes = text.length;
        // What this isolate last wrote or read: nothing to parse or merge (the once-a-second read of an unchanged log).
        if (text !== this.text) await this.adopt(readPurgeLog(JSON.parse(text)), text);
      }
    } catch (error) {
      // An unreadable record leaves this isolate's copy; the next sync tries again.
      if (strict) throw error;
      return;
    }
    // What was stored when the read started is in this copy now (a newer sequence heard meanwhile may not be).
    if (from && (from.id !== this.readFrom.id || from.n > this.readFrom.n)) this.readFrom = from;
  }

  /** Takes in the stored log: as it is when it holds every mark of this copy, else merged and written back. */
  private async adopt(log: PurgeLog, text: string | undefined) {
    if (text !== undefined && purgeLogCovers(log, this.log)) {
      this.log = log;
      this.text = text;
      return;
    }
    const mustWrite = purgeLogsDiffer(log, this.log);
    this.log = mergePurgeLogs(this.log, log); // marks only add up: two reads at once merge in either order
    this.text = undefined;
    if (mustWrite) await this.write();
  }

  /**
   * Applies `change` to the freshest copy and stores the result. It always re-reads first: a copy up to a second old
   * could lack another process's marks, and writing it would hide them from the box until that process syncs again.
   */
  async update(change: (log: PurgeLog) => PurgeLog): Promise<void> {
    await this.sync(true);
    this.log = change(this.log);
    this.text = undefined; // until written
    await this.write();
  }

  /**
   * Stores the record and reads it back: a purge is acknowledged only once it is durable (a full disk makes the
   * store refuse the write without the Cache API saying so), else this throws and the caller reports the failure.
   */
  private async write() {
    const written = this.log;
    const text = JSON.stringify(written);
    this.bytes = text.length;
    await this.store.put(KEY, { kind: "purge-log", key: KEY }, new Response(text).body, TTL_SECONDS);
    const back = await this.store.get(KEY);
    const backText = back?.body ? await new Response(back.body).text() : null;
    if (backText === text) {
      if (this.log === written) this.text = text; // (a read may have taken in more meanwhile)
      return;
    }
    // Another process may have stored a merge meanwhile: enough that every mark written here is in what is stored.
    const stored = backText === null ? null : readPurgeLog(JSON.parse(backText));
    if (!stored || purgeLogsDiffer(stored, this.log)) {
      throw new Error("the store did not keep the purge record (disk full or failing): nothing was purged durably");
    }
    this.text = undefined;
  }
}
