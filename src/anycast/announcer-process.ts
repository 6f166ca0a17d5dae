/**
 * The announcer as its own process (started by host.ts under `setpriv --pdeathsig KILL`, so it dies with the box
 * command; it starts BIRD the same way, so BIRD dies with it). A process apart from the service it checks: a DNS
 * node whose event loop hangs cannot hang its own health checks. Driven over the IPC channel:
 *   parent → {type:"start", options} | {type:"withdraw"} | {type:"stop"}
 *   child  → {type:"ready", …} | {type:"failed", error} | {type:"withdrawn"}
 * Logs: one JSON object per line on stdout for each change (announcement, health, BGP session, watchdog); BIRD's
 * own lines as "bird: …". Metrics and status on [anycast] metrics_listen.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { AnycastConfig } from "../config/anycast-schema.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../metrics/registry.ts";
import { BirdSpeaker } from "./bird.ts";
import { birdConfig, staticProtocols } from "./bird-config.ts";
import { AnycastController } from "./controller.ts";

/** What the box command tells its announcer. */
export interface AnnouncerProcessOptions {
  anycast: AnycastConfig;
  /** The config file's name, for the generated file's header. */
  source: string;
  check: { kind: "http"; url: string } | { kind: "dns"; host: string; port: number; zone: string };
  /** Where the announcement state goes (an edge: POST <url>/.well-known/cdn/anycast with the admin token). */
  report?: { url: string; token: string };
}

export type ParentMessage = { type: "start"; options: AnnouncerProcessOptions } | { type: "withdraw" } | { type: "stop" };
export type ChildMessage =
  | { type: "ready"; birdPid: number; configPath: string; socketPath: string; metricsUrl?: string }
  | { type: "failed"; error: string }
  | { type: "withdrawn" };

export const ANYCAST_REPORT_PATH = "/.well-known/cdn/anycast";

const send = (m: ChildMessage) => process.connected && process.send!(m);
const event = (e: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
const note = (line: string) => process.stdout.write(`anycast: ${line}\n`);

let controller: AnycastController | undefined;
let speaker: BirdSpeaker | undefined;
let metricsServer: Server | undefined;
let timer: NodeJS.Timeout | undefined;
let ending: Promise<void> | undefined;
/** A withdrawal was asked for (perhaps before the controller existed): it must never announce. */
let withdrawRequested = false;

process.on("message", (m: ParentMessage) => {
  if (m.type === "start") void start(m.options).catch((err: Error) => {
    send({ type: "failed", error: err.message });
    void end(2);
  });
  if (m.type === "withdraw") void withdraw().then(() => send({ type: "withdrawn" }));
  if (m.type === "stop") void end(0);
});
// The box command is gone (pdeathsig normally kills us first): withdraw and leave.
process.on("disconnect", () => void end(0));
process.on("SIGTERM", () => void end(0));
process.on("SIGINT", () => void end(0));

async function start(o: AnnouncerProcessOptions): Promise<void> {
  const a = o.anycast;
  const configPath = join(a.run_dir, "bird.conf");
  const socketPath = join(a.run_dir, "bird.ctl");
  if (Buffer.byteLength(socketPath) > 100) throw new Error(`anycast.run_dir: ${socketPath} is too long for a unix socket; choose a shorter run_dir`);
  try {
    mkdirSync(a.run_dir, { recursive: true, mode: 0o750 });
    writeFileSync(configPath, birdConfig(a, o.source));
  } catch (err) {
    throw new Error(`anycast.run_dir: cannot write ${configPath}: ${(err as Error).message}`);
  }
  speaker = new BirdSpeaker({
    bird: a.bird,
    birdc: a.birdc,
    configPath,
    socketPath,
    staticProtocols: staticProtocols(a),
    neighbors: a.neighbors.map((n) => n.name),
    log: (line) => process.stdout.write(`${line}\n`),
  });
  await speaker.start();
  // Each check loads only what it needs (TLS, DNS wire format): the announcer stays small.
  const check =
    o.check.kind === "http"
      ? (await import("./edge-check.ts")).edgeHealthCheck(o.check.url, a.timeout_ms)
      : (await import("./dns-check.ts")).dnsCheck(o.check.host, o.check.port, o.check.zone, a.timeout_ms);
  const report = o.report;
  controller = new AnycastController({
    check,
    speaker,
    settings: { downAfter: a.down_after, upAfter: a.up_after },
    log: event,
    report: report ? (state) => reportState(report, state) : undefined,
  });
  if (withdrawRequested) await controller.withdraw();
  if (!report && o.check.kind === "http") note("no [admin] token: the edge's health endpoint cannot show the announcement state");
  let metricsUrl: string | undefined;
  if (a.metrics_listen) metricsUrl = await serveMetrics(a.metrics_listen, () => ({ ...controller!.status(), pid: process.pid, birdPid: speaker?.pid, socketPath, prefixes: a.prefixes }));
  // Rounds start interval_ms apart, or right after a slower one (a check that timed out, a slow birdc): failing
  // checks are not spaced out to two intervals, and good ones never come closer than interval_ms.
  const loop = async () => {
    const started = Date.now();
    await controller!.round();
    if (!ending) timer = setTimeout(loop, Math.max(0, started + a.interval_ms - Date.now()));
  };
  void loop();
  send({ type: "ready", birdPid: speaker.pid!, configPath, socketPath, metricsUrl });
}

async function reportState(to: { url: string; token: string }, state: string): Promise<void> {
  const { loopbackFetch } = await import("./edge-check.ts");
  const res = await loopbackFetch(new URL(ANYCAST_REPORT_PATH, to.url).href, {
    method: "POST",
    headers: { authorization: `Bearer ${to.token}`, "content-type": "application/json" },
    body: JSON.stringify({ state }),
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`the edge answered ${res.status}: ${(await res.text()).trim().slice(0, 200)}`);
}

async function withdraw(): Promise<void> {
  withdrawRequested = true;
  await controller?.withdraw();
}

/** Withdraws, stops BIRD (closing its sessions), exits. */
function end(code: number): Promise<void> {
  ending ??= (async () => {
    clearTimeout(timer);
    await withdraw().catch(() => undefined);
    await speaker?.stop().catch(() => undefined);
    metricsServer?.close();
    process.exit(code);
  })();
  return ending;
}

/** /metrics (Prometheus text) and /status.json on host:port; resolves with the base URL. */
function serveMetrics(listen: string, status: () => unknown): Promise<string> {
  const colon = listen.lastIndexOf(":");
  const host = listen.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = Number(listen.slice(colon + 1));
  metricsServer = createServer((req, res) => {
    if (req.url === "/metrics") {
      res.writeHead(200, { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" });
      return res.end(controller!.metrics());
    }
    if (req.url === "/status.json") {
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      return res.end(JSON.stringify(status(), null, 2) + "\n");
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found: /metrics or /status.json\n");
  });
  return new Promise((resolve, reject) => {
    metricsServer!.once("error", (err) => reject(new Error(`anycast.metrics_listen ${listen}: ${err.message}`)));
    metricsServer!.listen(port, host, () => {
      const p = (metricsServer!.address() as { port: number }).port;
      resolve(`http://${host.includes(":") ? `[${host}]` : host}:${p}`);
    });
  });
}
