/**
 * The agent's connection leaving a hung NATS server (the agent calls reconnect() after two unanswered checks) goes to
 * the next server listed at once: nats.js first dialled the hung server again, whose kernel still accepts the
 * connection, and so waited the whole connect timeout (5 s) before the next server; meanwhile the box applied nothing
 * and its presence reports lagged (purge calls answered 202). Two loopback proxies to one real nats-server stand for two
 * servers; the first is cut silently (bytes stop, new connections hang): a hung server.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parseConfig } from "../../src/config/config.ts";
import { connectForever } from "../../src/control/nats.ts";
import { NATS_USER } from "../support/control-cdn.ts";
import { startTestNats, type TestNats } from "../support/nats.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";

let dir: string;
let nats: TestNats;
let first: TcpProxy;
let second: TcpProxy;
let nc: NatsConnection | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "parrot-nats-reconnect-"));
  nats = await startTestNats(dir, NATS_USER);
  first = await startTcpProxy(nats.options.port);
  second = await startTcpProxy(nats.options.port);
}, 60_000);

afterAll(async () => {
  await nc?.close().catch(() => undefined);
  await first?.close();
  await second?.close();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it("leaving a hung server, the agent's connection dials the next server listed, not the hung one again", async () => {
  const servers = [first, second].map((p) => `nats://127.0.0.1:${p.port}`);
  const cfg = parseConfig(
    `[edge]\norigin = "http://127.0.0.1:9"\n[admin]\ntoken = "reconnect-admin-token-0123456789"\n` +
      `[control]\nservers = ${JSON.stringify(servers)}\nuser = "${NATS_USER.user}"\npassword = "${NATS_USER.password}"\n`,
  ).control!;
  const conn = await connectForever(cfg, "reconnect-test");
  nc = conn;
  expect(conn.getServer()).toBe(`127.0.0.1:${first.port}`);
  expect(first.accepted).toBe(1);

  // A connection minutes old, as the agent's is when its server hangs: nats.js dials a server it dialled less than
  // reconnectTimeWait ago (1 s + up to 0.5 s jitter) only after that wait, one it dialled longer ago at once. Not a
  // synchronisation: a lower bound on the connection's age, which a slow machine only lengthens.
  await new Promise((r) => setTimeout(r, 2_000));
  await first.cut("silent");
  const reconnected = (async () => {
    for await (const s of conn.status()) if (s.type === "reconnect") return conn.getServer();
  })();
  await conn.reconnect();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<string>((r) => (timer = setTimeout(() => r("no reconnection within 30 s"), 30_000)));
  expect(await Promise.race([reconnected, deadline]).finally(() => clearTimeout(timer))).toBe(`127.0.0.1:${second.port}`);
  // The hung server was not dialled again (on the old code: a second connection, held for the 5 s connect timeout).
  expect(first.accepted).toBe(1);
  // And the connection works.
  expect(await conn.rtt()).toBeGreaterThanOrEqual(0);
}, 60_000);
