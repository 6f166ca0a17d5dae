/** Requests seen per key, for a rule's `min_uses` (nginx's proxy_cache_min_uses). Bounded: cleared past 100k keys. */
export class UseCounter {
  private readonly counts = new Map<string, number>();

  count(key: string) {
    if (this.counts.size > 100_000) this.counts.clear();
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  reached(key: string, min: number): boolean {
    return min <= 1 || (this.counts.get(key) ?? 0) >= min;
  }
}
