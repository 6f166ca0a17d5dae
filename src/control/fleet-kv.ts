/**
 * The fleet's key-value bucket on JetStream (Node): a stream laid out as NATS key-value buckets are (`KV_<bucket>`,
 * subjects `$KV.<bucket>.<key>`, the last value per key), so `nats kv get parrot_fleet rollout` reads it too. Gets
 * are by last message per subject, puts can be compare-and-set on the key's last sequence, and a watch is an ordered
 * consumer delivering the last value of each key, then every change.
 */
import { DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ControlConfig } from "../config/control-schema.ts";
import { connectOnce } from "./nats.ts";

/** The largest value the bucket takes (its stream's max_msg_size; nats-server's default max_payload is the same). */
export const FLEET_MAX_VALUE_BYTES = 1024 * 1024;

export interface KvEntry {
  key: string;
  /** The stream sequence of this value: the revision a compare-and-set names. */
  revision: number;
  value: string;
}

/** A bucket's name and how many values each key keeps. */
export interface KvLayout {
  bucket: string;
  history: number;
}

/** The bucket's name for a namespace: `parrot_fleet`. */
export function fleetBucket(namespace: string): string {
  return `${namespace.replace(/-/g, "_")}_fleet`;
}

export class FleetKv {
  readonly bucket: string;
  readonly stream: string;
  private readonly prefix: string;
  private readonly js: JetStreamClient;
  private readonly jsm: JetStreamManager;

  private constructor(bucket: string, js: JetStreamClient, jsm: JetStreamManager) {
    this.bucket = bucket;
    this.stream = `KV_${bucket}`;
    this.prefix = `$KV.${bucket}.`;
    this.js = js;
    this.jsm = jsm;
  }

  /**
   * Opens the bucket (default the fleet's; `layout`: another, e.g. the redirectors' mirror states), creating it (as
   * `[control]` says: replicas) when it does not exist.
   */
  static async open(nc: NatsConnection, cfg: ControlConfig, timeoutMs = cfg.publish_timeout_ms, layout: KvLayout = { bucket: fleetBucket(cfg.namespace), history: 10 }): Promise<FleetKv> {
    const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
    const kv = new FleetKv(layout.bucket, jetstream(nc, { timeout: timeoutMs }), jsm);
    try {
      await jsm.streams.info(kv.stream);
    } catch (err) {
      if ((err as Error).name !== "StreamNotFoundError") throw err;
      await jsm.streams
        .add({
          name: kv.stream,
          subjects: [`${kv.prefix}>`],
          retention: RetentionPolicy.Limits,
          storage: StorageType.File,
          num_replicas: cfg.replicas,
          // Versions are kept for ever (a rollback needs the one before); each key keeps its last `history` values.
          max_msgs_per_subject: layout.history,
          max_age: 0,
          discard: DiscardPolicy.New,
          allow_rollup_hdrs: true,
          deny_delete: true,
          allow_direct: true,
          max_msg_size: FLEET_MAX_VALUE_BYTES,
        })
        .catch(async (addErr: Error) => {
          if (!/already in use|exists/i.test(addErr.message)) throw addErr;
        });
    }
    return kv;
  }

  /** The key's last value, or undefined. */
  async get(key: string): Promise<KvEntry | undefined> {
    const m = await this.jsm.streams.getMessage(this.stream, { last_by_subj: this.prefix + key });
    if (!m) return undefined;
    return { key, revision: m.seq, value: m.string() };
  }

  /** The keys under `prefix` (e.g. "box."). */
  async keys(prefix: string): Promise<string[]> {
    const info = await this.jsm.streams.info(this.stream, { subjects_filter: `${this.prefix}${prefix}>` });
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(this.prefix.length));
  }

  /** The last value of every key under `prefix`. */
  async list(prefix: string): Promise<KvEntry[]> {
    const out: KvEntry[] = [];
    for (const key of await this.keys(prefix)) {
      const e = await this.get(key);
      if (e) out.push(e);
    }
    return out;
  }

  /**
   * Stores a value; with `previous` (a revision, 0 = the key must not exist yet) only if the key's last value is
   * still that one. Resolves to the new revision; a lost race rejects with an Error saying so.
   */
  async put(key: string, value: string, previous?: number): Promise<number> {
    try {
      const ack = await this.js.publish(this.prefix + key, value, previous === undefined ? undefined : { expect: { lastSubjectSequence: previous } });
      return ack.seq;
    } catch (err) {
      if (/wrong last sequence/i.test((err as Error).message)) throw new Error(`fleet: ${key} changed meanwhile (another push or rollback): try again`);
      throw err;
    }
  }

  /**
   * Calls `each` with the last value of `key` (or of each key it matches), then with every new one, until the returned stop is called. An
   * ordered consumer: it starts itself again after a reconnection (from where it was).
   */
  async watch(key: string, each: (e: KvEntry) => void): Promise<() => void> {
    const consumer = await this.js.consumers.get(this.stream, { filter_subjects: this.prefix + key, deliver_policy: DeliverPolicy.LastPerSubject });
    const messages = await consumer.consume();
    void (async () => {
      // `key` may hold wildcards (`fn.*.current`): each entry names the key it is of.
      for await (const m of messages) each({ key: m.subject.slice(this.prefix.length), revision: m.seq, value: m.string() });
    })().catch(() => undefined);
    return () => void messages.stop();
  }
}

/**
 * Asks the bucket something on a connection of its own (a box at its start, before it serves): `ask`'s answer within
 * `timeoutMs`, else a rejection saying so. A connection that comes after the deadline is closed when it does.
 */
export async function askFleetBucket<T>(cfg: ControlConfig, name: string, timeoutMs: number, ask: (kv: FleetKv) => Promise<T>): Promise<T> {
  let nc: NatsConnection | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const asked = (async () => {
    nc = await connectOnce({ ...cfg, publish_timeout_ms: Math.min(cfg.publish_timeout_ms, Math.max(timeoutMs, 100)) }, name);
    return ask(await FleetKv.open(nc, cfg));
  })();
  try {
    return await Promise.race([asked, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)))]);
  } finally {
    clearTimeout(timer);
    void asked.catch(() => undefined).finally(() => void (nc as NatsConnection | undefined)?.close().catch(() => undefined));
  }
}
