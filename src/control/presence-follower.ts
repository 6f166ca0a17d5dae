/**
 * A DNS node's ear on the control plane (Node): follows every box's presence reports (their heartbeats, every
 * `presence_interval_ms`) so its health monitor can take a box whose heartbeats stopped out of answers as its
 * probes would (see heartbeatProblem). NATS is reached in the background and again after every loss; meanwhile
 * (and for the first `silentMs` after each reconnection) the probes alone decide.
 */
import type { ControlConfig } from "../config/control-schema.ts";
import { ControlClient } from "./client.ts";
import { connectForever, retryOpening } from "./nats.ts";
import { describeHeartbeat, heartbeatProblem } from "./presence.ts";

export interface PresenceFollower {
  /** Why the box counts as down by its heartbeats now, or undefined. */
  problem(edge: string, now?: number): string | undefined;
  /** The box's last heartbeat (health, drain, anycast, age) for the status page; undefined when not heard. */
  describe(edge: string, now?: number): string | undefined;
  stop(): Promise<void>;
}

/** How many presence intervals a box may stay silent before it counts as down. */
export const SILENT_INTERVALS = 2.5;

export function followPresence(cfg: ControlConfig, name: string, log: (line: string) => void): PresenceFollower {
  const silentMs = SILENT_INTERVALS * cfg.presence_interval_ms;
  let client: ControlClient | undefined;
  let connectedSince: number | undefined;
  let stopped = false;
  void (async () => {
    const nc = await connectForever(cfg, name);
    if (stopped) return void (await nc.close());
    await retryOpening(
      async () => {
        client = await ControlClient.open(nc, cfg, []);
        connectedSince = Date.now();
        log(`dns: following the edges' heartbeats on the control plane (${nc.getServer()}; silent ${silentMs} ms = down)`);
      },
      () => stopped,
      (err) => log(`dns: following heartbeats failed: ${err.message} (retrying)`),
    );
    for await (const s of nc.status()) {
      if (s.type === "disconnect") connectedSince = undefined;
      // Reports sent while the node was away were missed: judge again only after a whole silent period.
      if (s.type === "reconnect") connectedSince = Date.now();
    }
  })().catch((err: Error) => log(`dns: heartbeats: ${err.message}`));
  return {
    problem(edge, now = Date.now()) {
      if (!client?.connected) return undefined;
      return heartbeatProblem(client.presence().get(edge), connectedSince, now, silentMs);
    },
    describe(edge, now = Date.now()) {
      return client?.connected ? describeHeartbeat(client.presence().get(edge), now) : undefined;
    },
    async stop() {
      stopped = true;
      await client?.connection.close().catch(() => undefined);
    },
  };
}
