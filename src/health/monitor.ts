/**
 * Probes every edge's health endpoint and keeps each edge's state (see health.ts). Runtime-agnostic: the Node DNS
 * host runs rounds on a timer; a worker runs them from request handling (waitUntil) when a round is due.
 */
import { afterProbe, ANYCAST_HEADER, answerable, CONTROL_HEADER, initialHealth, parseAnycast, parseControl, type EdgeHealth, type HealthSettings, type ProbeResult } from "./health.ts";

export { HEALTH_PATH } from "../contracts/well-known.ts";
import { HEALTH_PATH } from "../contracts/well-known.ts";

export interface MonitoredEdge {
  name: string;
  url?: string;
  drain?: boolean;
}

export interface MonitorSettings extends HealthSettings {
  intervalMs: number;
  timeoutMs: number;
  /** Fewer in-service edges than this: answer with all of them (fail-open). */
  minUp: number;
}

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export class HealthMonitor {
  private readonly edges: MonitoredEdge[];
  private readonly states = new Map<string, EdgeHealth>();
  readonly settings: MonitorSettings;
  private readonly fetchImpl: FetchLike;
  private readonly now: () => number;
  private lastRound = -Infinity;
  private running: Promise<void> | undefined;
  private readonly listeners: (() => void)[] = [];
  /** Bumped whenever an edge's state or drain changes: answers cached under an older version are stale. */
  version = 0;
  /**
   * With a control plane: why an edge counts as down by its heartbeats (undefined: fine, or not known). A probe that
   * succeeded then counts as failed, so a box whose heartbeats stopped leaves answers after `downAfter` rounds, as a
   * failing probe would; probe failures count whatever the heartbeats say.
   */
  heartbeats: ((edge: string) => string | undefined) | undefined;
  /** With a control plane: what the edge's last heartbeat said (health, drain, anycast), for the status page. */
  heartbeatState: ((edge: string) => string | undefined) | undefined;

  constructor(edges: MonitoredEdge[], settings: MonitorSettings, fetchImpl: FetchLike, now: () => number = Date.now) {
    this.edges = edges;
    this.settings = settings;
    this.fetchImpl = fetchImpl;
    this.now = now;
    for (const e of edges) this.states.set(e.name, initialHealth(now(), !!e.drain));
  }

  health(name: string): EdgeHealth | undefined {
    return this.states.get(name);
  }

  /** The edges DNS may answer with now, and whether that is the fail-open set. */
  answerable<T extends { name: string }>(edges: T[]): { edges: T[]; failOpen: boolean } {
    return answerable(edges, (n) => this.states.get(n), this.settings.minUp);
  }

  /** Operator drain (config or admin call): out of answers whatever the probes say. */
  setDrained(name: string, drained: boolean): boolean {
    const h = this.states.get(name);
    if (!h) return false;
    this.update(name, { ...h, drained });
    return true;
  }

  /** Runs `fn` after every change of an edge's state or drain (e.g. to pass the states on to other processes). */
  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  /**
   * Takes the states another process's monitor worked out (its snapshot): for processes that answer queries but
   * leave the probing to one monitor. Edges not named keep their state.
   */
  replace(states: Array<{ name: string } & EdgeHealth>): void {
    for (const { name, state, streak, since, lastProbe, drained, anycast, control } of states)
      if (this.states.has(name)) this.update(name, { state, streak, since, lastProbe, drained, anycast, control });
  }

  private update(name: string, h: EdgeHealth): void {
    const before = this.states.get(name);
    this.states.set(name, h);
    if (before && before.state === h.state && before.drained === h.drained) return;
    this.version++;
    for (const fn of this.listeners) fn();
  }

  /** Every edge's state, for metrics and the status page. */
  snapshot(): Array<{ name: string; url?: string } & EdgeHealth> {
    return this.edges.map((e) => ({ name: e.name, url: e.url, ...this.states.get(e.name)! }));
  }

  /** Whether a round is due now (none running, the last one interval_ms ago). */
  due(): boolean {
    return !this.running && this.now() - this.lastRound >= this.settings.intervalMs;
  }

  /** A round when one is due (at most one at a time); resolves when it ends. */
  maybeProbe(): Promise<void> {
    if (this.running) return this.running;
    if (this.now() - this.lastRound < this.settings.intervalMs) return Promise.resolve();
    return this.probeAll();
  }

  /** Probes every edge with a url once, in parallel. */
  probeAll(): Promise<void> {
    this.lastRound = this.now();
    this.running = Promise.all(
      this.edges
        .filter((e) => e.url)
        .map(async (e) => {
          let result = await this.probe(e.url!);
          const silent = result.kind !== "failed" ? this.heartbeats?.(e.name) : undefined;
          if (silent) result = { kind: "failed", detail: silent, anycast: result.anycast, control: result.control };
          this.update(e.name, afterProbe(this.states.get(e.name)!, result, this.settings, this.now()));
        }),
    ).then(
      () => void (this.running = undefined),
      () => void (this.running = undefined),
    );
    return this.running;
  }

  /**
   * Runs a round now and then one every intervalMs (a fixed cadence: a slow round does not push the next ones back;
   * a round still running when the next is due is not doubled) until the returned function is called (Node hosts).
   */
  start(): () => void {
    void this.probeAll();
    const timer = setInterval(() => {
      if (!this.running) void this.probeAll();
    }, this.settings.intervalMs);
    (timer as { unref?: () => void }).unref?.();
    return () => clearInterval(timer);
  }

  private async probe(baseUrl: string): Promise<ProbeResult> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.settings.timeoutMs);
    try {
      const aborted = new Promise<never>((_, reject) =>
        controller.signal.addEventListener("abort", () => reject(new Error("timed out"))),
      );
      const res = await Promise.race([
        this.fetchImpl(new URL(HEALTH_PATH, baseUrl).href, {
          signal: controller.signal,
          headers: { "user-agent": "parrot-cdn health probe" },
        }),
        aborted,
      ]);
      const text = (await Promise.race([res.text(), aborted])).trim();
      const anycast = parseAnycast(res.headers.get(ANYCAST_HEADER));
      const control = parseControl(res.headers.get(CONTROL_HEADER));
      if (res.status === 200 && text.startsWith("ok")) return { kind: "ok", anycast, control };
      if (text.startsWith("draining")) return { kind: "draining", anycast, control };
      return { kind: "failed", detail: `HTTP ${res.status}`, anycast, control };
    } catch (err) {
      return { kind: "failed", detail: controller.signal.aborted ? "timed out" : (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
  }
}
