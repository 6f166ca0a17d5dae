/**
 * Request coalescing (nginx's proxy_cache_lock): of the concurrent requests that find a key missing or stale, one
 * goes to the origin and the others wait for it, then read what it stored. Locks live in this isolate and, on an
 * edge box with several processes, also in the store process (SharedLocks), so the whole box makes one origin
 * request per key.
 *
 * A lookup takes a mark first; a claim made after it answers "changed" when the key was stored (in this isolate, or
 * by the store's clock in another process) since that mark, so the caller looks again instead of fetching twice.
 *
 * A lock lapses lock_timeout_ms after it was taken, or after it was last renewed: a slice fetch, which may take
 * longer than that on a slow origin or a busy box, holds its lock while its body goes into the store, so its waiters
 * wait instead of asking the origin for the same bytes; a fetch still waiting for the origin's answer frees them
 * within lock_timeout_ms, and one whose body stalls ends after origin_idle_timeout_ms (idle.ts), its renewal with it.
 * (Renewing per chunk would need a JavaScript hop in the body's way: on workerd that halves a cold download's speed
 * and doubles its memory.)
 */
import type { SharedLocks } from "../contracts/store.ts";

/**
 * A held lock. `release` is idempotent; `stored: true` says a store of the key already released the shared lock,
 * `fetched: false` that nothing went to the origin under it (so nothing can have been stored).
 */
export interface Claim {
  /** Settles when the lock is free everywhere (the store process told, for a shared one). */
  release(opts?: { stored?: boolean; fetched?: boolean }): Promise<void>;
  /**
   * Keeps the lock while `work` (a body on its way into the store) is under way: renewed every quarter of its time to
   * live, so waiters keep waiting for it instead of fetching the same bytes again.
   */
  holdWhile(work: Promise<unknown>): void;
}

export type ClaimResult = Claim | "held" | "changed";

/** The longest a request waits for another's fetch, however long that one keeps renewing its lock. */
const MAX_WAIT_MS = 600_000;

export interface LookupMark {
  mark: number;
  /** Date.now() at the mark. */
  at: number;
}

export class Coalescer {
  /**
   * Key → the holder's token, when its lock lapses (a holder whose request died never releases it: at least a second)
   * and until when requests wait for it (lock_timeout_ms after it was taken or last renewed).
   */
  private readonly inflight = new Map<string, { token: object; until: number; patience: number }>();
  /** Key → the mark current when its last lock ended (bounded: cleared past 100k keys). */
  private readonly ended = new Map<string, number>();
  private seq = 0;
  private readonly shared: SharedLocks | undefined;
  private readonly timeoutMs: number;

  constructor(opts: { shared?: SharedLocks; timeoutMs: number }) {
    this.shared = opts.shared;
    this.timeoutMs = opts.timeoutMs;
  }

  /** Whether the box's store holds the locks: a lookup can then take a key's lock itself (see adopt). */
  get sharedLocks(): boolean {
    return this.shared !== undefined;
  }

  /** Taken before a lookup, given to claim() after it. */
  mark(): LookupMark {
    return { mark: this.seq, at: Date.now() };
  }

  /**
   * Takes the lock of `key`. "held" when another request holds it, "changed" when the key was stored since `since`
   * (nothing taken in both cases). `waitUntil` carries the shared lock's release past the answer.
   */
  async claim(key: string, since: LookupMark, waitUntil: (p: Promise<unknown>) => void): Promise<ClaimResult> {
    if (this.isHeld(key)) return "held";
    if ((this.ended.get(key) ?? -1) > since.mark) return "changed";
    const local = this.local(key);
    if (!this.shared) return local;
    let got: "taken" | "held" | "changed";
    try {
      got = await this.shared.acquire(key, since.at);
    } catch {
      got = "taken"; // the store cannot be asked: coalesce within this process only
    }
    if (got !== "taken") {
      local.release({ fetched: false });
      return got;
    }
    return this.sharedClaim(key, local, waitUntil);
  }

  /**
   * The shared lock of `key` that a lookup took in the store (`token`, lookup and lock in one round trip), held as
   * claim() would hold it; "held" or "changed" (and the shared lock let go) when this isolate would not have claimed.
   */
  adopt(key: string, token: string, since: LookupMark, waitUntil: (p: Promise<unknown>) => void): ClaimResult {
    const shared = this.shared!;
    shared.adopt(key, token);
    const refused = this.isHeld(key) ? "held" : (this.ended.get(key) ?? -1) > since.mark ? "changed" : undefined;
    if (refused) {
      waitUntil(shared.release(key).catch(() => undefined));
      return refused;
    }
    return this.sharedClaim(key, this.local(key), waitUntil);
  }

  /** A claim of the shared lock of `key` (taken) and this isolate's `local` one. */
  private sharedClaim(key: string, local: Claim, waitUntil: (p: Promise<unknown>) => void): Claim {
    const shared = this.shared!;
    let released = false;
    return {
      release: (opts) => {
        void local.release();
        if (released || opts?.stored) return Promise.resolve();
        released = true;
        const told = shared.release(key).catch(() => undefined);
        waitUntil(told);
        return told;
      },
      holdWhile: (work) => {
        local.holdWhile(work);
        this.renewWhile(work, () => {
          if (!released) waitUntil(shared.renew(key).catch(() => undefined));
        });
      },
    };
  }

  /** A lock in this isolate only (background refreshes and bypass fetches mark their key this way). */
  local(key: string): Claim {
    const token = {};
    const lasts = Math.max(this.timeoutMs, 1000);
    if (!this.isHeld(key)) this.inflight.set(key, { token, until: Date.now() + lasts, patience: Date.now() + this.timeoutMs });
    const renew = () => {
      const held = this.inflight.get(key);
      if (held?.token !== token) return;
      held.until = Date.now() + lasts;
      held.patience = Date.now() + this.timeoutMs;
    };
    return {
      holdWhile: (work) => {
        renew();
        this.renewWhile(work, renew);
      },
      release: (opts) => {
        if (this.inflight.get(key)?.token !== token) return Promise.resolve();
        this.inflight.delete(key);
        if (opts?.fetched === false) return Promise.resolve(); // never went to the origin: nothing can have been stored
        if (this.ended.size > 100_000) this.ended.clear();
        this.ended.set(key, ++this.seq);
        return Promise.resolve();
      },
    };
  }

  /** Calls `renew` every quarter of lock_timeout_ms until `work` settles. */
  private renewWhile(work: Promise<unknown>, renew: () => void) {
    if (this.timeoutMs === 0) return; // no waiting, nothing to hold
    const timer = setInterval(renew, Math.max(this.timeoutMs / 4, 50));
    void work.finally(() => clearInterval(timer)).catch(() => undefined);
  }

  /**
   * Waits for the fetch of `key` under way to end: until its lock is released or lapses (lock_timeout_ms without
   * progress). It polls, as nginx's proxy_cache_lock does, rather than being woken: workerd may refuse to resume one
   * request from another request's context.
   */
  async wait(key: string): Promise<void> {
    if (this.timeoutMs === 0) return;
    const started = Date.now();
    let pause = 2;
    while (Date.now() - started < MAX_WAIT_MS && (await this.worthWaiting(key))) {
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 50);
    }
  }

  /**
   * Whether this isolate holds the lock of `key`. Locks lapse after lock_timeout_ms like the store's shared ones: a
   * request that ended before releasing one (its context gone) cannot hold up every later request.
   */
  private isHeld(key: string): boolean {
    const held = this.inflight.get(key);
    if (!held) return false;
    if (held.until > Date.now()) return true;
    this.inflight.delete(key);
    return false;
  }

  /** Whether a fetch of `key` is under way and has made progress within lock_timeout_ms (the store's locks last that). */
  private async worthWaiting(key: string): Promise<boolean> {
    if (this.isHeld(key)) return this.inflight.get(key)!.patience > Date.now();
    return this.shared ? this.shared.held(key).catch(() => false) : false;
  }
}
