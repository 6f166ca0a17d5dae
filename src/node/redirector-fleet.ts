/**
 * Redirector boxes sharing their scans through the key-value bucket `<namespace>_mirrors` on NATS JetStream (`[control]`; Node).
 * Each box puts a heartbeat every `fleet_heartbeat_ms`; each mirror is scanned by one live box (rendezvous hashing,
 * src/redirector/shared-state.ts), which puts what it found after every round; every box watches the bucket and
 * applies the others' results. A box gone (said "stopped", or silent for 3 heartbeats) loses its mirrors to the
 * others, which scan them at once. With NATS unreachable a box scans every mirror itself (and says so in its log);
 * when NATS returns it puts its states and shares again. At start the box takes every mirror's last state from the
 * bucket before it says ready, so a restart sends downloads to mirrors from its first request.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { ControlConfig } from "../config/control-schema.ts";
import { FleetKv, type KvEntry } from "../control/fleet-kv.ts";
import { connectForever } from "../control/nats.ts";
import type { Catalog } from "../redirector/catalog.ts";
import type { MirrorState } from "../redirector/mirror-state.ts";
import type { Redirector } from "../redirector/redirector.ts";
import {
  applyMirror,
  BOX_PREFIX,
  catalogOrder,
  decodeBeat,
  decodeMirror,
  encodeBeat,
  encodeMirror,
  keyToken,
  liveBoxes,
  MIRROR_PREFIX,
  mirrorsLayout,
  ownerOf,
  type BoxBeat,
  type CatalogOrder,
  type SharedMirror,
} from "../redirector/shared-state.ts";

export interface RedirectorFleetOptions {
  control: ControlConfig;
  box: string;
  heartbeatMs: number;
  /** The running redirector (a reload swaps it). */
  current: () => Redirector;
  log: (line: string) => void;
  /** Mirrors came to this box (another left, or NATS went away): scan them now. */
  onGained: () => void;
  now?: () => number;
}

export class RedirectorFleet {
  private readonly o: RedirectorFleetOptions;
  private readonly now: () => number;
  private nc?: NatsConnection;
  private kv?: FleetKv;
  private connected = false;
  private closed = false;
  private readonly beats = new Map<string, BoxBeat>();
  /** The last value of every mirror's state seen (applied again when the catalog changes). */
  private readonly states = new Map<string, SharedMirror>();
  private order?: { catalog: Catalog; order: CatalogOrder };
  private mine = new Set<string>();
  private timer?: ReturnType<typeof setInterval>;
  private stopWatch?: () => void;
  /** Values applied one after another (applying reads the catalog order, which is computed asynchronously). */
  private applying: Promise<void> = Promise.resolve();

  private constructor(o: RedirectorFleetOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
  }

  /**
   * Joins the fleet: connects (waiting up to `waitMs`), reads every box's heartbeat and every mirror's state, then
   * watches. Not reached in time: the box scans every mirror itself and joins when NATS answers.
   */
  static async start(o: RedirectorFleetOptions, waitMs: number): Promise<RedirectorFleet> {
    const f = new RedirectorFleet(o);
    const joined = connectForever(o.control, `redirector ${o.box}`).then((nc) => f.join(nc));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const inTime = await Promise.race([joined.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), waitMs)))]).catch((err: Error) => {
      o.log(JSON.stringify({ redirector: "fleet", error: err.message }));
      return false;
    });
    clearTimeout(timer);
    if (!inTime) {
      o.log(JSON.stringify({ redirector: "fleet", box: o.box, state: `NATS not reached within ${waitMs} ms: scanning every mirror itself until it is` }));
      void joined.catch((err: Error) => o.log(JSON.stringify({ redirector: "fleet", error: err.message })));
    }
    f.timer = setInterval(() => void f.beat(), o.heartbeatMs);
    f.timer.unref();
    f.recompute();
    return f;
  }

  private async join(nc: NatsConnection) {
    if (this.closed) return void nc.close();
    this.nc = nc;
    this.kv = await FleetKv.open(nc, this.o.control, undefined, mirrorsLayout(this.o.control.namespace));
    for (const e of await this.kv.list(BOX_PREFIX)) this.takeBeat(e);
    for (const e of await this.kv.list(MIRROR_PREFIX)) this.takeMirror(e);
    await this.applying;
    this.connected = true;
    await this.putBeat("up");
    this.recompute();
    await this.watch();
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "disconnect" && this.connected) {
          this.connected = false;
          this.o.log(JSON.stringify({ redirector: "fleet", box: this.o.box, state: "NATS unreachable: scanning every mirror itself" }));
          this.recompute();
        } else if (s.type === "reconnect" && !this.connected) {
          this.connected = true;
          this.o.log(JSON.stringify({ redirector: "fleet", box: this.o.box, state: "NATS back: sharing scans again" }));
          // A new watch at once: the old one's consumer may be gone with the server (a restarted nats-server), and
          // would only be noticed after its heartbeats are missed.
          await this.watch().catch((err: Error) => this.o.log(JSON.stringify({ redirector: "fleet", box: this.o.box, error: `watch: ${err.message}` })));
          await this.beat();
          await this.publish(this.o.current()); // what it scanned meanwhile
        }
      }
    })().catch(() => undefined);
    this.o.log(JSON.stringify({ redirector: "fleet", box: this.o.box, state: "sharing scans", boxes: this.live() }));
  }

  /** Watches the bucket (every key's last value first): other boxes' beats and mirrors' states. */
  private async watch() {
    this.stopWatch?.();
    this.stopWatch = await this.kv!.watch(">", (e) => {
      if (e.key.startsWith(BOX_PREFIX)) this.takeBeat(e);
      else if (e.key.startsWith(MIRROR_PREFIX)) this.takeMirror(e);
    });
  }

  private live(): string[] {
    return liveBoxes(this.beats.values(), this.now(), this.o.box);
  }

  /** Whether this box scans `m` now: its own share, or every mirror while NATS is away. */
  owns(m: MirrorState): boolean {
    return !this.connected || this.mine.has(m.config.name);
  }

  /** Who is in the fleet and what this box scans (the scan endpoint's answer). */
  describe() {
    return { box: this.o.box, connected: this.connected, boxes: this.live(), scans: [...this.mine].sort() };
  }

  private recompute() {
    const boxes = this.live();
    const names = this.o.current().mirrors.map((m) => m.config.name);
    const mine = new Set(this.connected ? names.filter((n) => ownerOf(n, boxes) === this.o.box) : names);
    const gained = [...mine].filter((n) => !this.mine.has(n));
    const changed = gained.length > 0 || mine.size !== this.mine.size;
    this.mine = mine;
    if (changed) this.o.log(JSON.stringify({ redirector: "fleet", box: this.o.box, boxes, scans: [...mine].sort() }));
    if (gained.length && this.kv) this.o.onGained();
  }

  private async beat() {
    if (this.connected) await this.putBeat("up");
    this.recompute();
  }

  private async putBeat(state: BoxBeat["state"]) {
    const beat: BoxBeat = { box: this.o.box, at: this.now(), state, interval_ms: this.o.heartbeatMs };
    this.beats.set(beat.box, beat);
    await this.kv?.put(BOX_PREFIX + keyToken(this.o.box), encodeBeat(beat)).catch((err: Error) => {
      this.o.log(JSON.stringify({ redirector: "fleet", error: `heartbeat: ${err.message}` }));
    });
  }

  private takeBeat(e: KvEntry) {
    const b = decodeBeat(e.value);
    if (typeof b === "string") return this.o.log(JSON.stringify({ redirector: "fleet", ignored: e.key, why: b }));
    if (e.key !== BOX_PREFIX + keyToken(b.box)) return this.o.log(JSON.stringify({ redirector: "fleet", ignored: e.key, why: `names box ${b.box}` }));
    if (b.box === this.o.box && b.state === "up") return; // its own (or its previous run's)
    this.beats.set(b.box, b);
    if (this.connected) this.recompute();
  }

  private takeMirror(e: KvEntry) {
    const s = decodeMirror(e.value);
    if (typeof s === "string") return this.o.log(JSON.stringify({ redirector: "fleet", ignored: e.key, why: s }));
    if (e.key !== MIRROR_PREFIX + keyToken(s.mirror)) return this.o.log(JSON.stringify({ redirector: "fleet", ignored: e.key, why: `names mirror ${s.mirror}` }));
    // Only mirrors of its config are kept (a bucket full of other names costs no memory).
    if (!this.o.current().mirrors.some((m) => m.config.name === s.mirror)) return;
    this.states.set(s.mirror, s);
    this.applying = this.applying.then(() => this.applyOne(this.o.current(), s)).catch(() => undefined);
  }

  private async orderOf(catalog: Catalog): Promise<CatalogOrder> {
    if (this.order?.catalog !== catalog || this.order.order.version !== catalog.version) this.order = { catalog, order: await catalogOrder(catalog) };
    return this.order.order;
  }

  private async applyOne(r: Redirector, s: SharedMirror) {
    const m = r.mirrors.find((x) => x.config.name === s.mirror);
    if (!m) return;
    const result = applyMirror(m, s, await this.orderOf(r.catalog));
    if (result === "config") this.o.log(JSON.stringify({ redirector: "fleet", ignored: s.mirror, why: `box ${s.box} has another url or paths for it` }));
  }

  /** Applies every state seen to `r` (a new redirector after a reload, or after its catalog changed). */
  async adopt(r: Redirector): Promise<void> {
    await this.applying;
    for (const s of this.states.values()) await this.applyOne(r, s);
  }

  /** Puts the state of every mirror this box scans (after a round). */
  async publish(r: Redirector): Promise<void> {
    const kv = this.kv;
    if (!kv || !this.connected) return;
    const order = await this.orderOf(r.catalog);
    await Promise.all(
      r.mirrors
        .filter((m) => this.mine.has(m.config.name) && m.lastScan !== undefined)
        .map((m) =>
          kv.put(MIRROR_PREFIX + keyToken(m.config.name), encodeMirror(m, order, this.o.box)).catch((err: Error) => {
            this.o.log(JSON.stringify({ redirector: "fleet", error: `${m.config.name}: ${err.message}` }));
          }),
        ),
    );
  }

  /** Says it stopped (its mirrors move to the others at once) and leaves. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    if (this.connected) await this.putBeat("stopped");
    this.stopWatch?.();
    await this.nc?.drain().catch(() => undefined);
  }
}
