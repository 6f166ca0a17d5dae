/**
 * One direction of an emulated long-distance link (the world in network namespaces, test/world/): what the
 * kernel's netem qdisc would do, which these machines' kernels lack. Pure: the caller passes the time.
 *
 * - Every packet is delivered `delayMs` after it was offered (one way: half the round-trip time), never earlier
 *   than the packet before it (a link does not reorder).
 * - Each packet is lost with probability `loss` (independent draws, from the injected random source).
 * - At most `queuePackets` packets are in flight: a full link drops the new packet (tail drop), so memory is bounded
 *   whatever a sender does.
 */
export interface LinkShape {
  /** One-way delay, milliseconds (≥ 0). */
  delayMs: number;
  /** Probability that a packet is lost, 0 … 1 (1: the link is cut). */
  loss: number;
  /** Packets in flight at most. */
  queuePackets: number;
}

export type Offered = "queued" | "lost" | "overflow";

/** Checks a shape, naming the field that is wrong. */
export function checkShape(s: LinkShape): LinkShape {
  if (!Number.isFinite(s.delayMs) || s.delayMs < 0 || s.delayMs > 60_000) throw new Error(`link: delayMs must be 0 … 60000, not ${s.delayMs}`);
  if (!Number.isFinite(s.loss) || s.loss < 0 || s.loss > 1) throw new Error(`link: loss must be 0 … 1, not ${s.loss}`);
  if (!Number.isInteger(s.queuePackets) || s.queuePackets < 1 || s.queuePackets > 1_000_000)
    throw new Error(`link: queuePackets must be an integer 1 … 1000000, not ${s.queuePackets}`);
  return s;
}

export class LinkDirection<P> {
  private shape: LinkShape;
  private readonly queue: { at: number; packet: P }[] = [];
  private head = 0;
  private lastAt = -Infinity;
  readonly counters = { passed: 0, lost: 0, overflow: 0 };
  private readonly random: () => number;

  constructor(shape: LinkShape, random: () => number = Math.random) {
    this.shape = checkShape({ ...shape });
    this.random = random;
  }

  /** Changes delay, loss or queue bound from now on (packets in flight keep their times). */
  setShape(shape: Partial<LinkShape>): void {
    this.shape = checkShape({ ...this.shape, ...shape });
  }

  getShape(): LinkShape {
    return { ...this.shape };
  }

  get inFlight(): number {
    return this.queue.length - this.head;
  }

  /** A packet handed to the link at `now`. */
  offer(now: number, packet: P): Offered {
    if (this.shape.loss > 0 && this.random() < this.shape.loss) {
      this.counters.lost++;
      return "lost";
    }
    if (this.inFlight >= this.shape.queuePackets) {
      this.counters.overflow++;
      return "overflow";
    }
    const at = Math.max(now + this.shape.delayMs, this.lastAt);
    this.lastAt = at;
    this.queue.push({ at, packet });
    return "queued";
  }

  /** The packets whose time has come by `now`, in the order they were offered. */
  due(now: number): P[] {
    const out: P[] = [];
    while (this.head < this.queue.length && this.queue[this.head]!.at <= now) out.push(this.queue[this.head++]!.packet);
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head); // keep the array from growing without bound
      this.head = 0;
    }
    this.counters.passed += out.length;
    return out;
  }

  /** When the next packet is due; undefined when none is in flight. */
  nextAt(): number | undefined {
    return this.head < this.queue.length ? this.queue[this.head]!.at : undefined;
  }
}
