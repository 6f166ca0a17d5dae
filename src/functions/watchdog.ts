/**
 * The watchdog of one function process. Open-source workerd enforces no CPU limit (one `while (true)` holds its
 * only thread for ever), so the box probes the process continuously and reads its CPU time: a probe that stays
 * unanswered while the process spends `budgetMs` of CPU means JavaScript ran that long without returning to the
 * event loop (a request over its CPU budget), and the process is killed (its keeper starts it again). CPU time,
 * not wall time: a process merely waiting for a busy machine's CPU is never killed.
 */
export interface WatchdogDeps {
  /** CPU time (user + system) of the current process, in ms; undefined when it is not running. */
  cpuMs(): number | undefined;
  /** Sends a probe; resolves true when answered, false when it could not be sent (the process is starting or gone). */
  probe(): Promise<boolean>;
  /** Ends the current process (it is started again by its keeper). */
  kill(reason: string): void;
}

export class Watchdog {
  /** CPU time when the outstanding probe was sent; undefined = none outstanding. */
  private sentAt: number | undefined;
  private generation = 0;
  kills = 0;

  private readonly budgetMs: number;
  private readonly deps: WatchdogDeps;

  constructor(budgetMs: number, deps: WatchdogDeps) {
    this.budgetMs = budgetMs;
    this.deps = deps;
  }

  /** One round: judge the outstanding probe, or send one. Called every few ms by the host's timer. */
  tick(): void {
    const cpu = this.deps.cpuMs();
    if (cpu === undefined) {
      this.sentAt = undefined;
      return;
    }
    if (this.sentAt !== undefined) {
      const spent = cpu - this.sentAt;
      if (spent >= this.budgetMs) {
        this.kills++;
        this.sentAt = undefined;
        this.generation++; // the killed process's probe answers nothing any more
        this.deps.kill(`${spent} ms of CPU without answering a probe (cpu_ms = ${this.budgetMs})`);
      }
      return;
    }
    this.sentAt = cpu;
    const generation = this.generation;
    void this.deps.probe().then(
      () => {
        if (generation === this.generation) this.sentAt = undefined;
      },
      () => {
        if (generation === this.generation) this.sentAt = undefined;
      },
    );
  }
}

/** User + system CPU time of a Linux process from `/proc/<pid>/stat` text, in ms (clock ticks of 10 ms). */
export function cpuMsFromStat(stat: string, ticksPerSecond = 100): number | undefined {
  // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return ((utime + stime) * 1000) / ticksPerSecond;
}
