/**
 * A DNS node's extra processes (`--workers n`): n − 1 processes answering on UDP sockets of their own bound to the
 * primary's address and port (SO_REUSEPORT: the kernel spreads clients over the processes), and the typed
 * messages between them. The primary probes the edges, takes operator calls and reloads; it passes every change
 * (health, ACME challenge records, a new configuration) to the workers, which report their query counts and memory
 * back every second. Messages are checked on arrival: anything not of the protocol is ignored.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ChallengeChange } from "../dns/challenges.ts";
import type { StatsDelta } from "../dns/observe.ts";
import type { ProcessMemory } from "../dns/operator.ts";
import type { EdgeHealth } from "../health/health.ts";

/** An edge's health as the primary's monitor knows it. */
export type EdgeSnapshot = { name: string } & EdgeHealth;

/** Primary → worker. */
export type ToWorker =
  /** Load this configuration (the file's path, for relative paths, and its text as the primary read it). */
  | { type: "start"; configPath: string; configText: string; processes: number }
  /** Bind a UDP socket of your own on this address and port (SO_REUSEPORT) and serve it. */
  | { type: "udp"; host: string; port: number }
  | { type: "health"; states: EdgeSnapshot[] }
  | { type: "challenges"; changes: ChallengeChange[] }
  /** A new configuration (SIGHUP, /admin/reload, a changed GeoIP file): load it and swap, or keep the old one. */
  | { type: "reload"; configText: string };

/** Worker → primary. */
export type ToPrimary =
  | { type: "loaded" }
  | { type: "failed"; error: string }
  | { type: "serving" }
  /** Every second: the query counts since the last, and the worker's memory. */
  | { type: "stats"; delta: StatsDelta; memory?: ProcessMemory }
  | { type: "reloaded"; error?: string };

const isObject = (m: unknown): m is Record<string, unknown> => typeof m === "object" && m !== null;

/** Whether a message is one the primary sends. */
export function isToWorker(m: unknown): m is ToWorker {
  if (!isObject(m)) return false;
  switch (m.type) {
    case "start":
      return typeof m.configPath === "string" && typeof m.configText === "string" && typeof m.processes === "number";
    case "udp":
      return typeof m.host === "string" && Number.isInteger(m.port);
    case "health":
      return Array.isArray(m.states);
    case "challenges":
      return Array.isArray(m.changes);
    case "reload":
      return typeof m.configText === "string";
    default:
      return false;
  }
}

/** Whether a message is one a worker sends. */
export function isToPrimary(m: unknown): m is ToPrimary {
  if (!isObject(m)) return false;
  switch (m.type) {
    case "loaded":
    case "serving":
      return true;
    case "failed":
      return typeof m.error === "string";
    case "stats":
      return (
        isObject(m.delta) &&
        Array.isArray(m.delta.queries) &&
        Array.isArray(m.delta.answers) &&
        (m.memory === undefined || (isObject(m.memory) && Number.isInteger(m.memory.pid) && typeof m.memory.rss === "number"))
      );
    case "reloaded":
      return m.error === undefined || typeof m.error === "string";
    default:
      return false;
  }
}

/** What the primary does with what workers tell it. */
export interface WorkerEvents {
  /** The first messages a new worker gets after "start" (current health and challenge records). */
  initial(): ToWorker[];
  stats(delta: StatsDelta, memory: ProcessMemory | undefined): void;
  reloaded(pid: number, error: string | undefined): void;
  log(line: string): void;
}

/** The primary's handle on its workers. */
export interface DnsWorkers {
  readonly pids: number[];
  send(message: ToWorker): void;
  stop(): void;
}

/** The worker's entry beside this module: dns-worker.mjs when the node runs from its bundle (dns-bundle.ts). */
const WORKER_ENTRY = fileURLToPath(new URL(import.meta.url.endsWith(".mjs") ? "./dns-worker.mjs" : "./dns-worker.ts", import.meta.url));

/** Starts n − 1 worker processes on the UDP socket's port; resolves when all serve (rejects when one fails to start). */
export async function startWorkers(
  n: number,
  udp: { address: string; port: number },
  start: { configPath: string; configText: string; processes: number },
  events: WorkerEvents,
): Promise<DnsWorkers> {
  const children: ChildProcess[] = [];
  let stopping = false;
  const send = (c: ChildProcess, m: ToWorker) => {
    if (c.connected) c.send(m);
  };
  const bound = udp;
  const handle: DnsWorkers = {
    get pids() {
      return children.map((c) => c.pid!);
    },
    send(m) {
      for (const c of children) send(c, m);
    },
    stop() {
      stopping = true;
      for (const c of children) c.kill();
    },
  };
  try {
    await Promise.all(
      Array.from({ length: n - 1 }, () => {
        const child = fork(WORKER_ENTRY, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] }); // stdout: query log lines
        children.push(child);
        return new Promise<void>((ok, no) => {
          child.on("message", (m: unknown) => {
            if (!isToPrimary(m)) return;
            switch (m.type) {
              case "loaded":
                for (const first of events.initial()) send(child, first);
                send(child, { type: "udp", host: bound.address, port: bound.port });
                break;
              case "serving":
                ok();
                break;
              case "failed":
                no(new Error(m.error));
                break;
              case "stats":
                events.stats(m.delta, m.memory);
                break;
              case "reloaded":
                events.reloaded(child.pid!, m.error);
                break;
            }
          });
          child.once("exit", (code, signal) => {
            no(new Error(`worker exited ${code ?? signal}`));
            if (!stopping) events.log(`dns: worker ${child.pid} exited (${code ?? signal}); the other processes go on`);
          });
          send(child, { type: "start", ...start });
        });
      }),
    );
  } catch (err) {
    handle.stop();
    throw err;
  }
  return handle;
}
