/**
 * Groups a stream of delivered messages into batches by time and count: a batch ends when no further message came
 * within `idleMs` of the last one, `maxWaitMs` after its first one, or at `max` messages. Messages already waiting
 * (a backlog, or what arrived while the previous batch was being applied) join at once, so a running edge applies a
 * burst in a few large edge calls, and a single purge waits only `idleMs` before it is applied.
 *
 * (A batch must not end at "nothing pending on the server": a running consumer receives each message the moment it
 * is stored, always with nothing pending after it, and so would apply one message per edge call.)
 */
export interface BatchOptions {
  max: number;
  idleMs: number;
  maxWaitMs: number;
}

/** The batches of `source`, in order; ends when the source ends. */
export async function* batches<T>(source: AsyncIterable<T>, opts: BatchOptions): AsyncGenerator<T[]> {
  const it = source[Symbol.asyncIterator]();
  let next: Promise<IteratorResult<T>> | undefined;
  let batch: T[] = [];
  let startedAt = 0;
  for (;;) {
    next ??= it.next();
    let result: IteratorResult<T> | "idle";
    if (batch.length === 0) {
      result = await next;
      startedAt = Date.now();
    } else {
      const wait = Math.max(0, Math.min(opts.idleMs, startedAt + opts.maxWaitMs - Date.now()));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<"idle">((r) => (timer = setTimeout(() => r("idle"), wait)));
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
    if (batch.length >= opts.max) {
      yield batch;
      batch = [];
    }
  }
}
