/**
 * Groups a stream of delivered messages into batches: a batch ends at a message after which nothing is pending
 * (`complete`), at `max` messages, or when no message came for `idleMs`. A single purge is applied at once; a
 * backlog (a box catching up) is applied a thousand messages per edge call instead of one call per message.
 */
export interface BatchOptions<T> {
  complete: (item: T) => boolean;
  max: number;
  idleMs: number;
}

/** The batches of `source`, in order; ends when the source ends. */
export async function* batches<T>(source: AsyncIterable<T>, opts: BatchOptions<T>): AsyncGenerator<T[]> {
  const it = source[Symbol.asyncIterator]();
  let next: Promise<IteratorResult<T>> | undefined;
  let batch: T[] = [];
  for (;;) {
    next ??= it.next();
    let result: IteratorResult<T> | "idle";
    if (batch.length === 0) result = await next;
    else {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<"idle">((r) => (timer = setTimeout(() => r("idle"), opts.idleMs)));
      result = await Promise.race([next, idle]);
      clearTimeout(timer);
    }
    if (result === "idle") {
      yield batch;
      batch = [];
      continue;
    }
    next = undefined;
    if (result.done) {
      if (batch.length) yield batch;
      return;
    }
    batch.push(result.value);
    if (opts.complete(result.value) || batch.length >= opts.max) {
      yield batch;
      batch = [];
    }
  }
}
