/**
 * Connecting to the control plane (`[control]`: servers, credentials, TLS) and making sure its two streams exist.
 * Node only (the agent and the CLI); the edge worker never talks to NATS.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { connect, credsAuthenticator, nkeyAuthenticator, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import { DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig, type StreamInfo } from "@nats-io/jetstream";
import type { ControlConfig } from "../config/control-schema.ts";
import type { ControlNames } from "./messages.ts";

const NANOS_PER_SECOND = 1_000_000_000;

/** The client options for `[control]` (files read now: a missing creds or TLS file fails here, naming the field). */
export function connectionOptions(cfg: ControlConfig, name: string): NodeConnectionOptions {
  const read = (field: string, path: string) => {
    try {
      return readFileSync(resolve(path));
    } catch (err) {
      throw new Error(`control.${field}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  const opts: NodeConnectionOptions = {
    servers: cfg.servers.map((s) => s.replace(/^(nats|tls):\/\//, "")),
    // `servers` is the whole list: the servers a cluster gossips (INFO connect_urls) are not added, so a box given
    // one server stays on it whether or not the cluster sets no_advertise.
    ignoreClusterUpdates: true,
    // In the listed order: a box names its nearest server first and falls back to the others in turn.
    noRandomize: true,
    name,
    // Forever: an edge box keeps trying while it serves; purges fail loudly meanwhile.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    reconnectJitter: 500,
    // A cut connection (no FIN, e.g. a partition) is noticed within ~ pingInterval × maxPingOut.
    pingInterval: 5_000,
    maxPingOut: 2,
    timeout: 5_000,
  };
  if (cfg.user !== undefined) Object.assign(opts, { user: cfg.user, pass: cfg.password });
  if (cfg.token !== undefined) opts.token = cfg.token;
  if (cfg.creds !== undefined) opts.authenticator = credsAuthenticator(new Uint8Array(read("creds", cfg.creds)));
  if (cfg.nkey !== undefined) opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(read("nkey", cfg.nkey).toString("utf8").trim()));
  if (cfg.servers.some((s) => s.startsWith("tls://")) || cfg.tls_ca || cfg.tls_cert) {
    opts.tls = {
      ...(cfg.tls_ca ? { ca: read("tls_ca", cfg.tls_ca).toString("utf8") } : {}),
      ...(cfg.tls_cert ? { cert: read("tls_cert", cfg.tls_cert).toString("utf8"), key: read("tls_key", cfg.tls_key!).toString("utf8") } : {}),
    };
  }
  return opts;
}

/** Connects once (the CLI): fails after `timeout` when no server answers. */
export async function connectOnce(cfg: ControlConfig, name: string): Promise<NatsConnection> {
  return connect({ ...connectionOptions(cfg, name), maxReconnectAttempts: 0, reconnect: false });
}

/**
 * Connects and keeps reconnecting for as long as the process runs (the agent); resolves at the first connection.
 * The first dial after a connection is lost (or left with `reconnect()`: its server hung) goes to the next server
 * listed, not to the same one: nats.js would dial the server of the first connection again first, and a hung one (its
 * kernel still accepts connections) holds that dial for the whole connect `timeout` (5 s) before the next is tried.
 * Later dials follow the client's own order (the lost server included: it may be the only one left).
 */
export async function connectForever(cfg: ControlConfig, name: string): Promise<NatsConnection> {
  let on: string | undefined;
  const nc = await connect({
    ...connectionOptions(cfg, name),
    waitOnFirstConnect: true,
    // Called before each dial with the servers in the order the client would try them; null: the client's choice.
    reconnectToServer: (pool) => {
      const lost = on;
      on = undefined;
      return (lost && pool.find((s) => s.listen !== lost)) || null;
    },
  });
  on = nc.getServer();
  void (async () => {
    for await (const s of nc.status()) if (s.type === "reconnect") on = nc.getServer();
  })().catch(() => undefined);
  return nc;
}

/**
 * Tries `open` (a bucket, a watch, a stream on a connection that is up) until it succeeds or `stopped()`: after each
 * failure `failed(err)` and a wait of 250 ms, doubling up to 5 s. True once it succeeded.
 */
export async function retryOpening(open: () => Promise<void>, stopped: () => boolean, failed: (err: Error) => void): Promise<boolean> {
  for (let delay = 250; !stopped(); delay = Math.min(delay * 2, 5_000)) {
    try {
      await open();
      return true;
    } catch (err) {
      failed(err as Error);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  return false;
}

/** The two streams' configurations for `[control]`. */
export function streamConfigs(cfg: ControlConfig, names: ControlNames): { control: Partial<StreamConfig> & { name: string }; presence: Partial<StreamConfig> & { name: string } } {
  const common = {
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: cfg.replicas,
    max_age: cfg.retention * NANOS_PER_SECOND,
    discard: DiscardPolicy.Old,
    max_msg_size: 1024 * 1024,
  };
  return {
    // Purges and drains, in order; a retried publish (same message id) within two minutes is stored once.
    control: { ...common, name: names.controlStream, subjects: [names.controlSubjects], duplicate_window: 120 * NANOS_PER_SECOND },
    // The last report of each edge.
    presence: { ...common, name: names.presenceStream, subjects: [names.presenceSubjects], max_msgs_per_subject: 1 },
  };
}

/**
 * Creates the streams that do not exist yet (as `[control]` says) and returns the control stream's info. Existing
 * streams are left as they are: boxes with different configs must not fight over them.
 */
export async function ensureStreams(jsm: JetStreamManager, cfg: ControlConfig, names: ControlNames): Promise<StreamInfo> {
  const configs = streamConfigs(cfg, names);
  const ensure = async (config: Partial<StreamConfig> & { name: string }) => {
    try {
      return await jsm.streams.info(config.name);
    } catch (err) {
      if ((err as Error).name !== "StreamNotFoundError") throw err;
      try {
        return await jsm.streams.add(config);
      } catch (addErr) {
        // Another box created it at the same moment.
        if (/already in use|exists/i.test((addErr as Error).message)) return await jsm.streams.info(config.name);
        throw addErr;
      }
    }
  };
  const [control] = await Promise.all([ensure(configs.control), ensure(configs.presence)]);
  return control;
}

/** The identity of a stream: its creation time (a recreated stream starts its sequence numbers again). */
export function streamIdentity(info: StreamInfo): string {
  return info.created;
}
