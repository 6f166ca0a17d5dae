/**
 * A DNS node's extra process (`--workers n`, forked by dns-cluster.ts): loads the configuration the primary names,
 * answers on a UDP socket of its own bound to the primary's port (SO_REUSEPORT), follows the primary's edge health and challenge records, reloads when told,
 * reports its query counts and memory every second and leaves with the primary. Query log lines go to the shared stdout.
 */
import { ChallengeStore } from "../dns/challenges.ts";
import { answerWire } from "../dns/doh.ts";
import { isToWorker, type ToPrimary } from "./dns-cluster.ts";
import { lineSink, listenUdp } from "./dns-host.ts";
import { processMemory } from "./process-memory.ts";
import { ResponseRateLimiter, rrlSettings } from "../dns/rrl.ts";
import { applyState, loadState, MAX_CHALLENGE_VALUES, udpGate, type NodeRuntime, type NodeState } from "./dns-node.ts";

const send = (m: ToPrimary) => process.connected && process.send!(m);
const log = (line: string) => process.stderr.write(`${line}\n`);
const sink = lineSink((chunk) => process.stdout.write(chunk));
process.on("exit", () => sink.flush());
process.on("uncaughtException", (err) => log(`dns worker: uncaught: ${err.stack ?? err}`));
process.on("disconnect", () => process.exit(0));

const rt: NodeRuntime = {
  challenges: new ChallengeStore(MAX_CHALLENGE_VALUES),
  rrl: new ResponseRateLimiter(rrlSettings({ rate: 0, slip: 0, ipv4_prefix: 24, ipv6_prefix: 56, exempt: [], table_size: 100 })),
  processes: 1,
  write: sink.line,
  log: () => {},
  canReload: false,
};
let state: NodeState | undefined;
let configPath = "";
/** The UDP bounds, changed in place on reload. */
const udpOptions = {
  answer: () => null,
  maxUdpSize: 1232,
  maxInflight: 1024,
  udpIo: "batched" as "batched" | "dgram",
  log,
  udpGate: udpGate(rt, () => state!.parts.observer),
};
/** Reloads run one after another, in the order the primary sent them. */
let queue: Promise<unknown> = Promise.resolve();

process.on("message", (m: unknown) => {
  if (!isToWorker(m)) return;
  switch (m.type) {
    case "start":
      configPath = m.configPath;
      rt.processes = m.processes;
      queue = loadState(configPath, m.configText, rt).then(
        (s) => {
          state = s;
          applyState(rt, s);
          send({ type: "loaded" });
        },
        (err) => send({ type: "failed", error: (err as Error).message }),
      );
      return;
    case "udp": {
      if (!state) return;
      const dns = state.config.dns!;
      Object.assign(udpOptions, { maxUdpSize: dns.max_udp_size, maxInflight: dns.max_inflight, udpIo: dns.udp_io });
      const answer = (msg: Uint8Array, peer: Uint8Array | null) => {
        try {
          return answerWire(msg, peer, state!.parts.server, "udp");
        } catch (err) {
          log(`dns udp: ${(err as Error).message}`);
          return null;
        }
      };
      const fallback = (reason: string) => log(`dns worker ${process.pid}: batched UDP I/O unavailable (${reason}): using node:dgram`);
      listenUdp(m.host, m.port, true, udpOptions, answer, fallback).then(
        () => send({ type: "serving" }),
        (err) => send({ type: "failed", error: `udp ${m.host}:${m.port}: ${(err as Error).message}` }),
      );
      return;
    }
    case "health":
      state?.parts.monitor.replace(m.states);
      return;
    case "challenges":
      for (const c of m.changes) rt.challenges.apply(c);
      return;
    case "reload":
      queue = queue.then(async () => {
        try {
          state = await loadState(configPath, m.configText, rt, state);
          applyState(rt, state);
          const dns = state.config.dns!;
          Object.assign(udpOptions, { maxUdpSize: dns.max_udp_size, maxInflight: dns.max_inflight });
          send({ type: "reloaded" });
        } catch (err) {
          send({ type: "reloaded", error: (err as Error).message });
        }
      });
      return;
  }
});

setInterval(() => {
  if (!state) return;
  const delta = state.parts.observer.takeDelta() ?? { queries: [], answers: [], rrl: [0, 0] };
  send({ type: "stats", delta, memory: processMemory() });
}, 1000).unref();
