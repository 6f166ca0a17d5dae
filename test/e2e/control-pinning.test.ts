/**
 * `[control] servers` is the whole list a box connects to: a box given one server of a three-server cluster stays on
 * it (here, a loopback proxy to n1 that the test cuts) and does not move to the servers the cluster gossips to its
 * clients (INFO connect_urls), whatever the cluster's no_advertise.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import { ControlSchema } from "../../src/config/control-schema.ts";
import { connectForever } from "../../src/control/nats.ts";
import { startTestCluster, type TestCluster } from "../support/nats.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";

const AUTH = { user: "parrot", password: "pinning-nats-password-0123" };
let dir: string;
let cluster: TestCluster;
let proxy: TcpProxy;
let nc: NatsConnection | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "parrot-pinning-"));
  cluster = await startTestCluster(dir, AUTH);
  proxy = await startTcpProxy(cluster.options[0]!.port);
}, 90_000);

afterAll(async () => {
  await nc?.close();
  await proxy?.close();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("[control] servers", () => {
  it("pins a box to the servers listed: cut off from them, it does not reconnect to others of the cluster", async () => {
    const cfg = ControlSchema.parse({ servers: [`nats://127.0.0.1:${proxy.port}`], ...AUTH });
    nc = await connectForever(cfg, "pinned");
    await nc.flush();
    const status = nc.status()[Symbol.asyncIterator]();
    await proxy.cut("close");
    // Three failed attempts in a row at the listed server, or a connection elsewhere: whichever comes first.
    const seen: string[] = [];
    let attempts = 0;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<"deadline">((r) => (timer = setTimeout(() => r("deadline"), 30_000)));
    while (attempts < 3) {
      const next = await Promise.race([status.next(), deadline]);
      if (next === "deadline" || next.done) break;
      const event = next.value as { type: string; server?: string };
      seen.push(event.server ? `${event.type} ${event.server}` : event.type);
      if (event.type === "reconnect") break;
      if (event.type === "reconnecting") attempts++;
    }
    clearTimeout(timer);
    expect(seen.filter((e) => e.startsWith("reconnect "))).toEqual([]);
    expect(attempts).toBe(3);
    expect(nc.isClosed()).toBe(false);
    // It comes back through the same listed server once that answers again.
    await proxy.restore();
    for (;;) {
      const next = await status.next();
      if (next.done) throw new Error("status ended");
      const event = next.value as { type: string; server?: string };
      if (event.type === "reconnect") {
        expect(event.server).toBe(`127.0.0.1:${proxy.port}`);
        break;
      }
    }
  }, 60_000);
});
