/**
 * The purge client: publishes purges and drains to the control stream (a call succeeds only when JetStream has
 * acknowledged every part: stored on the stream's replicas) and follows the edges' presence reports to tell which
 * have applied them. The CLI (`npm run purge`) and each box's control agent use it.
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { PurgeRequest } from "../cache/purge.ts";
import type { ControlConfig } from "../config/control-schema.ts";
import { controlNames, encodeMessage, parsePresence, splitPurge, type ControlNames, type PresenceReport } from "./messages.ts";
import { ensureStreams, streamIdentity } from "./nats.ts";
import { knownDown, summarize, type AppliedSummary } from "./presence.ts";

/** The control plane could not store the message: nothing was (or only the named part was) published. */
export class ControlUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ControlUnavailableError";
  }
}

export interface Published {
  /** The control stream's identity (its creation time) and the sequence of the (last) message: applied once an edge reports it. */
  stream: string;
  seq: number;
  /** Messages the call became (a large purge is split). */
  parts: number;
  /** Publishes made again before JetStream acknowledged (within `publish_deadline_ms`), and why the first failed. */
  retries: number;
  retried?: string;
}

/**
 * Why a publish was not acknowledged, for an operator, and whether trying again can help. During a stream leader
 * election JetStream answers "no responders" or "JetStream not enabled" (no meta leader), or nothing (a hung server).
 */
export function explainPublishError(err: Error): { retry: boolean; reason: string } {
  const text = `${err.name}: ${err.message}`;
  if (/no ?responders|503/i.test(text)) return { retry: true, reason: "leader election in progress (no JetStream server answered for the stream)" };
  if (/jetstream (is )?not enabled|JetStreamNotEnabled/i.test(text)) return { retry: true, reason: "leader election in progress (the cluster has no JetStream leader)" };
  if (/timeout|timed out/i.test(text)) return { retry: true, reason: "no acknowledgement in time (a hung server or a leader election)" };
  if (/disconnect|closed|connection/i.test(text)) return { retry: true, reason: "the connection to the control plane is down" };
  return { retry: false, reason: text };
}

export class ControlClient {
  readonly names: ControlNames;
  private readonly nc: NatsConnection;
  private readonly jsm: JetStreamManager;
  private readonly cfg: ControlConfig;
  private readonly configured: readonly string[];
  private streamId: string;
  private readonly reports = new Map<string, PresenceReport>();
  private readonly listeners = new Set<() => void>();
  private sub: Subscription | undefined;
  /** Whether the connection is up (the agent's connection reconnects by itself; publishes fail fast meanwhile). */
  connected = true;
  lastError = "";

  private constructor(nc: NatsConnection, jsm: JetStreamManager, cfg: ControlConfig, streamId: string, configured: readonly string[]) {
    this.nc = nc;
    this.jsm = jsm;
    this.cfg = cfg;
    this.names = controlNames(cfg.namespace);
    this.streamId = streamId;
    this.configured = configured;
  }

  /**
   * A client over an open connection: makes sure the streams exist, then follows presence reports. `configured`
   * names the edges the config lists (`[[edges]]`), known even before they report.
   */
  static async open(nc: NatsConnection, cfg: ControlConfig, configured: readonly string[]): Promise<ControlClient> {
    const jsm = await jetstreamManager(nc, { timeout: cfg.publish_timeout_ms });
    const info = await ensureStreams(jsm, cfg, controlNames(cfg.namespace));
    const client = new ControlClient(nc, jsm, cfg, streamIdentity(info), configured);
    client.watchConnection();
    await client.followPresence();
    return client;
  }

  /** The control stream's identity as of the last (re)connection. */
  get stream(): string {
    return this.streamId;
  }

  /** Publishes a purge (split into messages of at most 256 KB); resolves when every part is stored. */
  async publishPurge(request: PurgeRequest, targets?: string[]): Promise<Published> {
    const parts = splitPurge(request);
    if (typeof parts === "string") throw new Error(parts);
    let seq = 0;
    let retries = 0;
    let retried: string | undefined;
    const deadline = Date.now() + this.cfg.publish_deadline_ms;
    for (let i = 0; i < parts.length; i++) {
      const message = encodeMessage({ kind: "purge", request: parts[i]!, ...(targets?.length ? { targets } : {}), at: Date.now() });
      try {
        const r = await this.publish(this.names.purgeSubject, message, deadline);
        seq = r.seq;
        retries += r.retries;
        retried ??= r.retried;
      } catch (err) {
        const stored = i ? ` (parts 1–${i} of ${parts.length} were stored up to sequence ${seq}: purge again)` : "";
        throw new ControlUnavailableError(`${(err as Error).message}: the purge was not stored${stored}`);
      }
    }
    return { stream: this.streamId, seq, parts: parts.length, retries, ...(retried ? { retried } : {}) };
  }

  /** Publishes a drain (or its end) for one edge; resolves when stored. */
  async publishDrain(edge: string, draining: boolean): Promise<Published> {
    try {
      const message = encodeMessage({ kind: "drain", edge, draining, at: Date.now() });
      const r = await this.publish(this.names.drainSubject(edge), message, Date.now() + this.cfg.publish_deadline_ms);
      return { stream: this.streamId, seq: r.seq, parts: 1, retries: r.retries, ...(r.retried ? { retried: r.retried } : {}) };
    } catch (err) {
      throw new ControlUnavailableError(`${(err as Error).message}: the drain was not stored`);
    }
  }

  /**
   * Publishes until JetStream acknowledges or `deadline` passes. Every attempt carries the same message id: one that
   * was stored without its acknowledgement reaching us is stored once (the stream's duplicate window is 2 minutes).
   */
  private async publish(subject: string, data: Uint8Array, deadline: number): Promise<{ seq: number; retries: number; retried?: string }> {
    const msgID = crypto.randomUUID();
    let first: string | undefined;
    for (let attempt = 0, delay = 100; ; attempt++) {
      let reason: string;
      let why: string;
      let retry = true;
      // A publish while disconnected would sit in the client's buffer and might land long after this call failed.
      if (!this.connected || this.nc.isClosed()) {
        reason = `control plane unreachable (${this.cfg.servers.join(", ")}${this.lastError ? `: ${this.lastError}` : ""})`;
        why = "the connection to the control plane was down";
        retry = !this.nc.isClosed();
      } else {
        try {
          const timeout = Math.max(100, Math.min(this.cfg.publish_timeout_ms, deadline - Date.now()));
          const js = jetstream(this.nc, { timeout });
          const ack = await js.publish(subject, data, { msgID, timeout });
          return { seq: ack.seq, retries: attempt, ...(first ? { retried: first } : {}) };
        } catch (err) {
          const explained = explainPublishError(err as Error);
          reason = `control plane did not store it: ${explained.reason} (${(err as Error).name}: ${(err as Error).message})`;
          why = explained.reason;
          retry = explained.retry;
        }
      }
      first ??= why;
      const left = deadline - Date.now();
      if (!retry || left <= 0) {
        throw new Error(attempt ? `${reason}; tried ${attempt + 1} times over ${Math.round(this.cfg.publish_deadline_ms / 1000)} s` : reason);
      }
      await new Promise((r) => setTimeout(r, Math.min(delay, left)));
      delay = Math.min(delay * 2, 1_000);
    }
  }

  /** The last report of every edge that has reported. */
  presence(): ReadonlyMap<string, PresenceReport> {
    return this.reports;
  }

  /** Which edges have applied sequence `seq` now. */
  summary(published: Pick<Published, "stream" | "seq">, targets?: string[]): AppliedSummary {
    return summarize(this.reports, this.configured, published.stream, published.seq, Date.now(), targets);
  }

  /**
   * Waits until every known edge has applied `published`, or `timeoutMs` passes; then who has and who has not. With
   * `untilKnownDown`, it stops waiting once every edge still pending is known down (stopped, never reported, silent).
   */
  async waitApplied(published: Pick<Published, "stream" | "seq">, timeoutMs: number, targets?: string[], untilKnownDown = false): Promise<AppliedSummary> {
    const silentMs = 3 * this.cfg.presence_interval_ms;
    const settled = (s: AppliedSummary) => !s.pending.length || (untilKnownDown && s.pending.every((p) => knownDown(this.reports.get(p.edge), Date.now(), silentMs)));
    const now = this.summary(published, targets);
    if (settled(now) || timeoutMs <= 0) return now;
    await new Promise<void>((done) => {
      const finish = () => {
        clearTimeout(timer);
        clearInterval(ticker);
        this.listeners.delete(listener);
        done();
      };
      const listener = () => {
        if (settled(this.summary(published, targets))) finish();
      };
      // An edge falls silent without a report saying so: look again as time passes.
      const ticker = setInterval(listener, 250);
      const timer = setTimeout(finish, timeoutMs);
      this.listeners.add(listener);
    });
    return this.summary(published, targets);
  }

  /** Records a report if it is newer than what we have for that edge. */
  private take(data: Uint8Array) {
    const r = parsePresence(data);
    if (typeof r === "string") return;
    const known = this.reports.get(r.edge);
    if (known && known.at > r.at) return;
    this.reports.set(r.edge, r);
    for (const l of this.listeners) l();
  }

  /** Live reports (a core subscription on the presence subjects), then the last stored report of each edge. */
  private async followPresence() {
    this.sub ??= this.nc.subscribe(this.names.presenceSubjects, {
      callback: (err, msg) => {
        if (!err) this.take(msg.data);
      },
    });
    const info = await this.jsm.streams.info(this.names.presenceStream, { subjects_filter: ">" });
    const subjects = Object.keys(info.state.subjects ?? {}).slice(0, 10_000);
    await Promise.all(
      subjects.map(async (subject) => {
        const msg = await this.jsm.streams.getMessage(this.names.presenceStream, { last_by_subj: subject }).catch(() => null);
        if (msg) this.take(msg.data);
      }),
    );
  }

  private watchConnection() {
    void (async () => {
      for await (const s of this.nc.status()) {
        if (s.type === "disconnect") {
          this.connected = false;
          this.lastError = `disconnected since ${new Date().toISOString()}`;
        } else if (s.type === "reconnect") {
          this.connected = true;
          this.lastError = "";
          // The stream may have been recreated, and reports sent meanwhile were missed.
          void this.refresh();
        } else if (s.type === "error" && "error" in s) {
          this.lastError = String((s as { error: unknown }).error);
        }
      }
    })().catch(() => undefined);
  }

  /** Re-reads the stream's identity and the presence reports (after a reconnection). */
  async refresh(): Promise<void> {
    try {
      this.streamId = streamIdentity(await ensureStreams(this.jsm, this.cfg, this.names));
      await this.followPresence();
    } catch (err) {
      this.lastError = (err as Error).message;
    }
  }

  /** The connection's JetStream manager (the agent sets up its consumer with it). */
  get manager(): JetStreamManager {
    return this.jsm;
  }

  get connection(): NatsConnection {
    return this.nc;
  }

  /** Publishes one presence report (core publish: stored by the presence stream, seen live by every client). */
  report(r: PresenceReport): void {
    if (!this.connected || this.nc.isClosed()) return;
    this.nc.publish(this.names.presenceSubject(r.edge), encodeMessage(r));
    this.take(encodeMessage(r));
  }
}
