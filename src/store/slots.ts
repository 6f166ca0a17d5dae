/**
 * A bound on work that holds memory while it runs (the store's block reads: a 1 MiB buffer each, however small the
 * range asked): at most `max` at once, the others wait in arrival order. A slot not given back within `leaseMs` (its
 * request was cancelled before it could) counts as free again, so a lost release never stops the store.
 */
export class Slots {
  private readonly max: number;
  private readonly leaseMs: number;
  private readonly now: () => number;
  private readonly holders = new Map<number, number>();
  private readonly waiting: ((release: () => void) => void)[] = [];
  private next = 0;

  constructor(max: number, opts: { leaseMs?: number; now?: () => number } = {}) {
    this.max = max;
    this.leaseMs = opts.leaseMs ?? 30_000;
    this.now = opts.now ?? Date.now;
  }

  /** Slots in use. */
  get busy(): number {
    return this.holders.size;
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Waits for a slot; the function it resolves to gives it back (once; later calls do nothing). */
  acquire(): Promise<() => void> {
    this.reclaim();
    if (this.holders.size < this.max && this.waiting.length === 0) return Promise.resolve(this.take());
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // Nobody gave one back for a lease: look again (slots held that long count as free).
        const i = this.waiting.indexOf(handOver);
        if (i < 0) return;
        this.waiting.splice(i, 1);
        resolve(this.acquire());
      }, this.leaseMs);
      const handOver = (release: () => void) => {
        clearTimeout(timer);
        resolve(release);
      };
      this.waiting.push(handOver);
    });
  }

  private take(): () => void {
    const id = this.next++;
    this.holders.set(id, this.now());
    return () => {
      if (!this.holders.delete(id)) return;
      this.reclaim();
      while (this.holders.size < this.max && this.waiting.length) this.waiting.shift()!(this.take());
    };
  }

  private reclaim() {
    const old = this.now() - this.leaseMs;
    for (const [id, since] of this.holders) if (since <= old) this.holders.delete(id);
  }
}
