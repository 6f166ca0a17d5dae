/**
 * The control agent of an edge box: the box's durable JetStream consumer. It runs beside the box's workerd
 * processes (started by `npm run edge` when `[control]` is set) because a worker cannot hold a NATS connection.
 *
 *   start ── read the edge's control mark ── plan (resume after it; a gap → soft purge of all) ── (re)create the
 *            durable consumer at that sequence ── replay in batches through the edge's admin endpoints ── nothing
 *            pending → mark "caught up for BOOT_ID" (the edge stops treating older entries as stale)
 *   then  ── apply new messages in batches (whatever arrived within a few ms, up to 2,000: one purge call per batch),
 *            ack, report presence ("applied up to N") after each batch and every interval
 *   every second ── ask where the stream ends; once applied up to there, the box was current then (its lease, see
 *            lease.ts: the edge trusts its cache until lease_ms after that). No answer twice in a row (a hung server,
 *            a partition) → move to another server; answers but no delivery while behind → start the consumer again
 *   purge calls the edge hands over (its CONTROL binding → this agent's unix socket) are published here
 *
 * Every failure (NATS down, the edge restarting) is retried with a bounded backoff for as long as the box runs; the
 * edge keeps serving meanwhile.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { CdnConfig } from "../config/config.ts";
import type { ControlConfig } from "../config/control-schema.ts";
import { ControlApi } from "./api.ts";
import { batches } from "./batch.ts";
import { ControlClient } from "./client.ts";
import { EdgeAdmin } from "./edge-admin.ts";
import { Lease, LEADER_HEARD_WITHIN_MS, unconfirmedLeader, type LeaseView } from "./lease.ts";
import { parseControlMessage } from "./messages.ts";
import { connectForever, ensureStreams, streamIdentity } from "./nats.ts";
import { coalesce, contiguous, planStart, type ApplyPlan, type Delivered } from "./plan.ts";
import type { ControlMark, PurgeRequest } from "../cache/purge.ts";

export interface ControlAgentOptions {
  /** The box's config (with `[control]`, `[admin] token` and `[edge] name`). */
  config: CdnConfig;
  /** The local edge's base URL (its listening address). */
  edgeUrl: string;
  /** This box start's id (the edge worker's BOOT_ID). */
  bootId: string;
  /** Where the agent listens for the edge worker's CONTROL binding (a unix socket in a 0700 directory). */
  socketPath: string;
  log?: (line: string) => void;
}

export interface AgentStatus {
  edge: string;
  boot: string;
  connected: boolean;
  stream: string | null;
  /** Last stream sequence applied at this box. */
  seq: number;
  caughtUp: boolean;
  lastError: string;
  /** Whether the box is confirmed current on the control stream, and until when its cache is trusted. */
  lease: LeaseView;
  /** The NATS server the agent is connected to (empty while disconnected). */
  server: string;
}

export interface ControlAgent {
  /** Resolves once the box has replayed everything pending since it started. */
  readonly caughtUp: Promise<{ seq: number }>;
  status(): AgentStatus;
  stop(): Promise<void>;
}

/** The calls the agent makes to its edge (EdgeAdmin, or a fake in tests). */
export interface EdgeCalls {
  /** With `mark`: the purge and the mark in one edge call. */
  purge(req: PurgeRequest, mark?: Omit<ControlMark, "at">): Promise<void>;
  drain(draining: boolean): Promise<void>;
  setMark(mark: Omit<ControlMark, "at">): Promise<void>;
}

/**
 * Applies one batch at the edge: soft purges, hard purges, the last drain, then the mark "applied up to the batch's
 * last sequence" (with the boot id once nothing is pending) — with the last purge when there is no drain (one write
 * of the edge's log instead of two). Throws if the edge refused any call: nothing is acked.
 */
export async function applyBatch(edge: EdgeCalls, batch: Delivered[], self: string, stream: string, caughtUpBoot?: string): Promise<ApplyPlan> {
  const plan = coalesce(batch, self);
  const mark = { stream, seq: plan.lastSeq, ...(caughtUpBoot ? { boot: caughtUpBoot } : {}) };
  const withMark = plan.drain === undefined && plan.purges.length > 0;
  for (const [i, req] of plan.purges.entries()) await edge.purge(req, withMark && i === plan.purges.length - 1 ? mark : undefined);
  if (plan.drain !== undefined) await edge.drain(plan.drain);
  if (!withMark) await edge.setMark(mark);
  return plan;
}

/** The consumer must start again after the last applied sequence (not an error: no backoff). */
class Replan extends Error {}

/** Most messages applied in one batch; a batch closes when nothing more came within BATCH_IDLE_MS, at most BATCH_WAIT_MS. */
const BATCH_MAX = 2000;
const BATCH_IDLE_MS = 5;
const BATCH_WAIT_MS = 50;
/** How often the agent asks where the stream ends (the lease check), and how long an answer may take. */
const CHECK_INTERVAL_MS = 1_000;
const CHECK_TIMEOUT_MS = 1_500;
/** Unanswered checks in a row after which the agent leaves its server (a hung one answers nothing, and pings take 10 s). */
const CHECK_FAILURES_TO_MOVE = 2;

/** Starts the agent: its socket listens at once; NATS and the edge are reached (and reached again) in the background. */
export async function startControlAgent(opts: ControlAgentOptions): Promise<ControlAgent> {
  const { config } = opts;
  const cfg = config.control;
  if (!cfg) throw new Error("startControlAgent: the config has no [control] table");
  const token = config.admin.token;
  if (!token) throw new Error("admin.token: [control] needs an admin token: the control agent reaches its edge's admin endpoints with it");
  const self = config.edge?.name;
  if (!self) throw new Error("edge.name: [control] runs on an edge box: the config needs an [edge] table");
  const agent = new Agent(opts, cfg, self, new EdgeAdmin(opts.edgeUrl, token));
  await agent.listen();
  agent.run();
  return agent;
}

class Agent implements ControlAgent {
  readonly caughtUp: Promise<{ seq: number }>;
  private markCaughtUp!: (v: { seq: number }) => void;
  private readonly opts: ControlAgentOptions;
  private readonly cfg: ControlConfig;
  private readonly self: string;
  private readonly edge: EdgeAdmin;
  private readonly log: (line: string) => void;
  private readonly api: ControlApi;
  private nc: NatsConnection | undefined;
  private client: ControlClient | undefined;
  private messages: ConsumerMessages | undefined;
  private stopped = false;
  private seq = 0;
  private stream: string | null = null;
  private isCaughtUp = false;
  private lastError = "";
  private presenceTimer: ReturnType<typeof setInterval> | undefined;
  private checkTimer: ReturnType<typeof setInterval> | undefined;
  private checkJsm: JetStreamManager | undefined;
  private checking = false;
  private checkFailures = 0;
  /** The applied sequence and when it last moved (the no-progress timer), and whether a batch is being applied. */
  private progress = { seq: 0, at: 0 };
  private applying = false;
  private readonly lease: Lease;
  /** The edge's health as last read (every presence interval; not on each batch). */
  private health = "unknown";
  /** The edge's anycast announcement as last read (with [anycast] on the box). */
  private anycast: "announced" | "withdrawn" | undefined;
  private wake: (() => void) | undefined;
  /** Where and when the current consumer started: the catch-up's size and time. */
  private replay = { from: 1, started: 0 };
  /** Set when the consumer must start again after the last applied sequence (and why). */
  private replan = "";

  constructor(opts: ControlAgentOptions, cfg: ControlConfig, self: string, edge: EdgeAdmin) {
    this.opts = opts;
    this.cfg = cfg;
    this.self = self;
    this.edge = edge;
    this.log = opts.log ?? ((line) => process.stderr.write(`${new Date().toISOString()} control: ${line}\n`));
    this.lease = new Lease(cfg.lease_ms);
    this.caughtUp = new Promise((r) => (this.markCaughtUp = r));
    this.api = new ControlApi({
      self,
      cfg,
      client: () => (this.client?.connected ? this.client : undefined),
      reconnecting: () => !!this.nc && !this.nc.isClosed() && !this.stopped,
      status: () => this.status(),
      lastError: () => this.client?.lastError || this.lastError,
    });
  }

  listen(): Promise<void> {
    return this.api.listen(this.opts.socketPath);
  }

  status(): AgentStatus {
    return {
      edge: this.self,
      boot: this.opts.bootId,
      connected: !!this.client?.connected,
      stream: this.stream,
      seq: this.seq,
      caughtUp: this.isCaughtUp,
      lastError: this.lastError,
      lease: this.lease.view(Date.now()),
      server: this.client?.connected ? (this.nc?.getServer() ?? "") : "",
    };
  }

  /** The supervised loop: connect, then consume; any failure is logged and retried after a bounded backoff. */
  run(): void {
    void (async () => {
      let delay = 250;
      while (!this.stopped) {
        try {
          await this.connect();
          await this.consume();
          delay = 250;
        } catch (err) {
          if (this.stopped) break;
          if (err instanceof Replan) {
            this.log(`starting the consumer again after ${this.seq}: ${err.message}`);
            this.replan = "";
            continue;
          }
          const message = (err as Error).message;
          if (message !== this.lastError) this.log(`${message} (retrying)`);
          this.lastError = message;
          await this.sleep(delay);
          delay = Math.min(delay * 2, 5_000);
        }
      }
    })();
  }

  private async connect() {
    if (!this.nc) {
      const nc = await connectForever(this.cfg, `parrot-edge ${this.self}`);
      if (this.stopped) {
        await nc.close();
        throw new Error("stopped");
      }
      this.nc = nc;
      this.log(`connected to ${this.nc.getServer()}`);
      void (async () => {
        for await (const s of this.nc!.status()) {
          if (s.type === "disconnect") this.log(`disconnected from the control plane; edges keep serving, purges fail until it returns`);
          if (s.type === "reconnect") {
            this.log(`reconnected to ${this.nc!.getServer()}`);
            this.checkFailures = 0;
            // Messages delivered to the dead connection would wait for ack_wait: start again after the last applied.
            if (this.messages) {
              this.replan = "reconnected";
              this.messages.stop();
            }
            this.wake?.();
          }
        }
      })().catch(() => undefined);
    }
    if (!this.client) {
      this.client = await ControlClient.open(this.nc, this.cfg, configuredEdges(this.opts.config));
      this.checkJsm = await jetstreamManager(this.nc, { timeout: CHECK_TIMEOUT_MS, checkAPI: false });
      this.presenceTimer ??= setInterval(() => void this.refreshHealth().then(() => this.report()), this.cfg.presence_interval_ms);
      this.checkTimer ??= setInterval(() => void this.check(), CHECK_INTERVAL_MS);
    }
  }

  /**
   * The lease check: where does the stream end now? Once this box has applied up to there, it was current when the
   * question was sent. A server that does not answer twice in a row is left for another (a hung server keeps its TCP
   * connection, and pings would take 10 s to notice); a consumer that delivers nothing while the box is behind is
   * started again.
   */
  private async check() {
    const jsm = this.checkJsm;
    if (this.checking || this.stopped || !jsm || !this.client || !this.stream) return;
    this.checking = true;
    const at = Date.now();
    try {
      const info = await jsm.streams.info(this.client.names.controlStream);
      const unconfirmed = unconfirmedLeader(info.cluster, info.config.num_replicas, LEADER_HEARD_WITHIN_MS);
      // Not an answer of the stream's quorum: no lease from it; twice in a row moves the box to another server.
      if (unconfirmed) throw new Error(unconfirmed);
      this.checkFailures = 0;
      this.lease.answered(at, info.state.last_seq, this.seq);
      const behind = info.state.last_seq > this.seq;
      if (!behind || this.applying || this.progress.seq !== this.seq) this.progress = { seq: this.seq, at: Date.now() };
      else if (this.messages && !this.replan && Date.now() - this.progress.at > this.cfg.lease_ms) {
        this.replan = `nothing delivered for ${Math.round((Date.now() - this.progress.at) / 1000)} s while ${info.state.last_seq - this.seq} messages are stored past ${this.seq}`;
        this.progress = { seq: this.seq, at: Date.now() };
        this.messages.stop();
      }
    } catch (err) {
      if (this.stopped) return;
      this.checkFailures++;
      const nc = this.nc;
      if (this.checkFailures === CHECK_FAILURES_TO_MOVE && nc && !nc.isClosed() && this.client?.connected) {
        this.log(`${nc.getServer()} did not answer ${this.checkFailures} checks in a row (${(err as Error).message}): moving to another server`);
        this.lastError = `${nc.getServer()} not answering`;
        await nc.reconnect().catch((e: Error) => this.log(`reconnecting failed: ${e.message}`));
      }
    } finally {
      this.checking = false;
    }
  }

  /** Plans from the edge's mark, (re)creates the durable consumer there, and applies what it delivers until it ends. */
  private async consume() {
    const client = this.client!;
    const jsm = client.manager;
    const names = client.names;
    const state = await this.edge.state();
    await this.refreshHealth();
    if (state.boot !== this.opts.bootId) {
      throw new Error(`the edge runs with boot id ${state.boot ?? "(none)"}, not this box start's ${this.opts.bootId}`);
    }
    const asked = Date.now();
    const info = await ensureStreams(jsm, this.cfg, names);
    const stream = streamIdentity(info);
    const plan = planStart(state.mark ?? undefined, { id: stream, firstSeq: info.state.first_seq, lastSeq: info.state.last_seq });
    if (plan.softAll) {
      this.log(`${plan.reason}: everything stored before now is stale (soft purge of all)`);
      await this.edge.purge({ all: true, soft: true });
      await this.edge.setMark({ stream, seq: plan.startSeq - 1, ...(this.isCaughtUp ? { boot: this.opts.bootId } : {}) });
    }
    this.stream = stream;
    this.seq = plan.startSeq - 1;
    // The stream ended at last_seq when it was asked (just now): once applied up to there, the box was current, if
    // the answer came from the stream's quorum.
    if (!unconfirmedLeader(info.cluster, info.config.num_replicas, LEADER_HEARD_WITHIN_MS)) this.lease.answered(asked, info.state.last_seq, this.seq);
    const durable = names.durable(this.self);
    await jsm.consumers.delete(names.controlStream, durable).catch(() => undefined);
    const consumer = await jsm.consumers.add(names.controlStream, {
      durable_name: durable,
      ack_policy: AckPolicy.All,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: plan.startSeq,
      filter_subject: names.controlSubjects,
      ack_wait: 30_000_000_000,
      max_ack_pending: 20_000,
      description: `parrot-cdn edge box ${this.self}`,
    });
    this.log(`consumer ${durable} from sequence ${plan.startSeq} (${plan.reason}); ${consumer.num_pending} pending`);
    this.replay = { from: plan.startSeq, started: performance.now() };
    this.lastError = "";
    if (consumer.num_pending === 0) await this.caughtUpAt(stream);
    const js = jetstream(client.connection);
    const c = await js.consumers.get(names.controlStream, durable);
    const messages = await c.consume({ max_messages: BATCH_MAX, idle_heartbeat: 5_000, expires: 30_000 });
    this.messages = messages;
    let lost = "";
    void (async () => {
      for await (const s of messages.status()) {
        if (s.type === "consumer_deleted" || s.type === "consumer_not_found" || s.type === "stream_not_found") {
          lost = `the control consumer is gone (${s.type})`;
          messages.stop();
        }
      }
    })().catch(() => undefined);
    try {
      for await (const batch of batches<JsMsg>(messages, { max: BATCH_MAX, idleMs: BATCH_IDLE_MS, maxWaitMs: BATCH_WAIT_MS })) {
        // Only what continues the applied sequence: a message lost in delivery (its connection died) must not be
        // skipped by acking a later one; the consumer starts again after the last applied sequence instead.
        const { run, gapAt } = contiguous(batch, this.seq);
        if (run.length) {
          const last = run[run.length - 1]!;
          const nothingPending = gapAt === undefined && last.info.pending === 0;
          const delivered: Delivered[] = run.map((m) => ({ seq: m.seq, message: parseControlMessage(m.data) }));
          this.applying = true;
          const plan = await this.applyUntilDone(delivered, stream, nothingPending || this.isCaughtUp ? this.opts.bootId : undefined).finally(() => {
            this.applying = false;
          });
          for (const r of plan.refused) this.log(`refused message ${r.seq}: ${r.reason}`);
          last.ack();
          this.seq = last.seq;
          this.lease.applied(this.seq);
          if (nothingPending && !this.isCaughtUp) await this.caughtUpAt(stream, false);
          // A drain changes the edge's health: report it now, not at the next interval.
          if (plan.drain !== undefined) await this.refreshHealth();
          void this.report();
        }
        if (gapAt !== undefined) throw new Replan(`sequence ${this.seq + 1} was not delivered before ${gapAt}`);
        if (this.replan) throw new Replan(this.replan);
      }
    } finally {
      this.messages = undefined;
      messages.stop();
    }
    if (this.replan) throw new Replan(this.replan);
    if (!this.stopped) throw new Error(lost || "the control consumer stopped");
  }

  /** Applies a batch, retrying while the edge cannot take it (it may be restarting); the box keeps serving. */
  private async applyUntilDone(batch: Delivered[], stream: string, boot: string | undefined): Promise<ApplyPlan> {
    for (let attempt = 0, delay = 200; ; attempt++) {
      try {
        return await applyBatch(this.edge, batch, this.self, stream, boot);
      } catch (err) {
        if (this.stopped) throw err;
        if (attempt === 0 || attempt % 20 === 0) this.log(`applying ${batch[0]!.seq}–${batch[batch.length - 1]!.seq} at the edge failed: ${(err as Error).message} (retrying)`);
        await this.sleep(delay);
        delay = Math.min(delay * 2, 3_000);
      }
    }
  }

  /** Marks the edge caught up for this boot (its older entries are trusted again) and says so. */
  private async caughtUpAt(stream: string, write = true) {
    if (write) await this.edge.setMark({ stream, seq: this.seq, boot: this.opts.bootId });
    if (!this.isCaughtUp) {
      const replayed = this.seq - this.replay.from + 1;
      this.log(`caught up at sequence ${this.seq} (replayed ${replayed} messages in ${Math.round(performance.now() - this.replay.started)} ms)`);
    }
    this.isCaughtUp = true;
    this.markCaughtUp({ seq: this.seq });
    void this.report();
  }

  private async refreshHealth() {
    ({ health: this.health, anycast: this.anycast } = await this.edge.health());
  }

  private async report(state: "running" | "stopped" = "running") {
    const client = this.client;
    if (!client || !this.stream) return;
    const health = state === "stopped" ? "stopped" : this.health;
    client.report({
      edge: this.self,
      boot: this.opts.bootId,
      stream: this.stream,
      seq: this.seq,
      caughtUp: this.isCaughtUp,
      health,
      state,
      ...(this.anycast ? { anycast: this.anycast } : {}),
      at: Date.now(),
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        r();
      }
      this.wake = done;
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.presenceTimer);
    clearInterval(this.checkTimer);
    this.wake?.();
    await this.report("stopped").catch(() => undefined);
    this.messages?.stop();
    await this.api.close();
    await this.nc?.flush().catch(() => undefined);
    await this.nc?.close().catch(() => undefined);
  }
}

/** The edges the config lists: known to the control plane even before they report. */
export function configuredEdges(config: CdnConfig): string[] {
  return config.edges.map((e) => e.name);
}
