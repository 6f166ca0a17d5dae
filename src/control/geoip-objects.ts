/**
 * The fleet's GeoIP databases in a JetStream object store (Node), laid out as NATS object stores are (stream
 * `OBJ_<bucket>`, chunks on `$O.<bucket>.C.<nuid>`, the object's description on `$O.<bucket>.M.<name in base64url>`),
 * so `nats object ls parrot_geoip` reads it too. A database of 60–100 MB travels as 128 KiB chunks (NATS' default
 * max_payload is 1 MB), published with a bounded number in flight, and is read back with an ordered consumer and
 * checked against its size and SHA-256 before anyone uses it.
 */
import { createHash, randomUUID } from "node:crypto";
import { DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import type { ControlConfig } from "../config/control-schema.ts";

export const CHUNK_BYTES = 128 * 1024;
/** Chunks published before their acknowledgements are awaited. */
const IN_FLIGHT = 32;
/** A download that receives nothing for this long fails (the next change or restart tries again). */
const STALL_MS = 30_000;

/** What the object store says about one object (the subset of NATS' ObjectInfo this uses). */
export interface ObjectInfo {
  name: string;
  bucket: string;
  nuid: string;
  size: number;
  chunks: number;
  /** `SHA-256=<base64url>`, as NATS writes it. */
  digest: string;
  mtime: string;
}

/** The bucket's name for a namespace: `parrot_geoip`. */
export function geoipBucket(namespace: string): string {
  return `${namespace.replace(/-/g, "_")}_geoip`;
}

export const sha256Hex = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const natsDigest = (hex: string) => `SHA-256=${Buffer.from(hex, "hex").toString("base64url")}=`;

export class GeoipObjects {
  readonly bucket: string;
  readonly stream: string;
  private readonly js: JetStreamClient;
  private readonly jsm: JetStreamManager;

  private constructor(bucket: string, js: JetStreamClient, jsm: JetStreamManager) {
    this.bucket = bucket;
    this.stream = `OBJ_${bucket}`;
    this.js = js;
    this.jsm = jsm;
  }

  /** Opens the store; `create` (the operator) makes it when it does not exist (as `[control]` says: replicas). */
  static async open(nc: NatsConnection, cfg: ControlConfig, create: boolean): Promise<GeoipObjects> {
    const jsm = await jetstreamManager(nc, { timeout: cfg.publish_timeout_ms });
    const o = new GeoipObjects(geoipBucket(cfg.namespace), jetstream(nc, { timeout: cfg.publish_timeout_ms }), jsm);
    try {
      await jsm.streams.info(o.stream);
    } catch (err) {
      if ((err as Error).name !== "StreamNotFoundError" || !create) throw err;
      await jsm.streams
        .add({
          name: o.stream,
          subjects: [`$O.${o.bucket}.C.>`, `$O.${o.bucket}.M.>`],
          retention: RetentionPolicy.Limits,
          storage: StorageType.File,
          num_replicas: cfg.replicas,
          discard: DiscardPolicy.New,
          allow_rollup_hdrs: true,
          allow_direct: true,
          max_age: 0,
        })
        .catch((addErr: Error) => {
          if (!/already in use|exists/i.test(addErr.message)) throw addErr;
        });
    }
    return o;
  }

  private metaSubject(name: string): string {
    return `$O.${this.bucket}.M.${Buffer.from(name).toString("base64url")}${"=".repeat((3 - (Buffer.byteLength(name) % 3)) % 3)}`;
  }

  /** Stores `bytes` as `name` (chunks first, the description last: a reader never sees half an object). */
  async put(name: string, bytes: Uint8Array, digestHex = sha256Hex(bytes)): Promise<ObjectInfo> {
    const nuid = randomUUID().replace(/-/g, "");
    const subject = `$O.${this.bucket}.C.${nuid}`;
    const chunks = Math.ceil(bytes.length / CHUNK_BYTES);
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < chunks; i++) {
      pending.push(this.js.publish(subject, bytes.subarray(i * CHUNK_BYTES, Math.min(bytes.length, (i + 1) * CHUNK_BYTES))));
      if (pending.length >= IN_FLIGHT) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
    const info: ObjectInfo = { name, bucket: this.bucket, nuid, size: bytes.length, chunks, digest: natsDigest(digestHex), mtime: new Date().toISOString() };
    const h = natsHeaders();
    h.set("Nats-Rollup", "sub");
    await this.js.publish(this.metaSubject(name), JSON.stringify({ ...info, options: { max_chunk_size: CHUNK_BYTES } }), { headers: h });
    return info;
  }

  /** The object's description, or undefined. */
  async info(name: string): Promise<ObjectInfo | undefined> {
    const m = await this.jsm.streams.getMessage(this.stream, { last_by_subj: this.metaSubject(name) }).catch(() => undefined);
    return m ? (JSON.parse(m.string()) as ObjectInfo) : undefined;
  }

  /** Every object's description. */
  async list(): Promise<ObjectInfo[]> {
    const info = await this.jsm.streams.info(this.stream, { subjects_filter: `$O.${this.bucket}.M.>` });
    const out: ObjectInfo[] = [];
    for (const subject of Object.keys(info.state.subjects ?? {})) {
      const m = await this.jsm.streams.getMessage(this.stream, { last_by_subj: subject }).catch(() => undefined);
      if (m) out.push(JSON.parse(m.string()) as ObjectInfo);
    }
    return out;
  }

  /** The object's bytes, checked against its size and digest (throws naming what differs). */
  async get(name: string, expectHex?: string): Promise<Uint8Array> {
    const info = await this.info(name);
    if (!info) throw new Error(`object ${name} is not in ${this.stream}`);
    if (expectHex && info.digest !== natsDigest(expectHex)) throw new Error(`object ${name} is not the one recorded (digest ${info.digest})`);
    const out = new Uint8Array(info.size);
    let at = 0;
    let received = 0;
    if (info.chunks > 0) {
      const consumer = await this.js.consumers.get(this.stream, { filter_subjects: `$O.${this.bucket}.C.${info.nuid}`, deliver_policy: DeliverPolicy.All });
      const messages = await consumer.consume({ max_messages: 64 });
      let stall: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(stall);
        stall = setTimeout(() => messages.stop(new Error(`no chunk for ${STALL_MS / 1000} s (${received} of ${info.chunks} received)`)), STALL_MS);
      };
      arm();
      try {
        for await (const m of messages) {
          arm();
          if (at + m.data.length > info.size) throw new Error(`object ${name} has more bytes than its size ${info.size}`);
          out.set(m.data, at);
          at += m.data.length;
          if (++received === info.chunks) break;
        }
      } finally {
        clearTimeout(stall);
        messages.stop();
      }
    }
    if (received !== info.chunks || at !== info.size) throw new Error(`object ${name}: ${received} of ${info.chunks} chunks, ${at} of ${info.size} bytes`);
    const digest = natsDigest(sha256Hex(out));
    if (digest !== info.digest) throw new Error(`object ${name}: its bytes do not match its digest (${digest}, recorded ${info.digest})`);
    return out;
  }

  /** Removes every object not named in `keep` (chunks and description): old editions do not pile up. */
  async prune(keep: readonly string[]): Promise<string[]> {
    const removed: string[] = [];
    for (const o of await this.list()) {
      if (keep.includes(o.name)) continue;
      await this.jsm.streams.purge(this.stream, { filter: `$O.${this.bucket}.C.${o.nuid}` });
      await this.jsm.streams.purge(this.stream, { filter: this.metaSubject(o.name) });
      removed.push(o.name);
    }
    return removed;
  }
}
