/**
 * Probes every edge's health endpoint and keeps each edge's state (see health.ts). Runtime-agnostic: the Node DNS
 * host runs rounds on a timer; a worker runs them from request handling (waitUntil) when a round is due.
 */
import { afterProbe, answerable, initialHealth, type EdgeHealth, type HealthSettings, type ProbeResult } from "./health.ts";

export const HEALTH_PATH = "/.well-known/cdn/health";

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
    this.states.set(name, { ...h, drained });
    return true;
  }

  /** Every edge's state, for metrics and the status page. */
  snapshot(): Array<{ name: string; url?: string } & EdgeHealth> {
    return this.edges.map((e) => ({ name: e.name, url: e.url, ...this.states.get(e.name)! }));
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
          const result = await this.probe(e.url!);
          this.states.set(e.name, afterProbe(this.states.get(e.name)!, result, this.settings, this.now()));
        }),
    ).then(
      () => void (this.running = undefined),
      () => void (this.running = undefined),
    );
    return this.running;
  }

  /** Runs rounds every intervalMs until the returned function is called (Node hosts). */
  start(): () => void {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const loop = async () => {
      await this.probeAll();
      if (!stopped) timer = setTimeout(loop, this.settings.intervalMs);
    };
    void loop();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
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
      if (res.status === 200 && text.startsWith("ok")) return { kind: "ok" };
      if (text.startsWith("draining")) return { kind: "draining" };
      return { kind: "failed", detail: `HTTP ${res.status}` };
    } catch (err) {
      return { kind: "failed", detail: controller.signal.aborted ? "timed out" : (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
  }
}
