/**
 * `startAnycast`: what an edge box command or a DNS node command calls to announce its anycast prefixes while it
 * is healthy. It runs the announcer (announcer-process.ts) as a child under `setpriv --pdeathsig KILL`: if the
 * command dies (even by kill -9) the announcer dies, BIRD dies with the announcer, and the BGP sessions close, so
 * routers withdraw at once. If the announcer dies alone, this restarts it (after 1 s, backing off to 30 s); it starts
 * withdrawn and announces again after `up_after` good checks.
 *
 * Planned stop: `await anycast.withdraw()` (withdrawn, then `withdraw_grace_ms` for routers to converge and
 * connections to finish), then stop serving, then `await anycast.stop()`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import type { CdnConfig } from "../config/config.ts";
import type { AnnouncerProcessOptions, ChildMessage } from "./announcer-process.ts";

export interface StartAnycastOptions {
  config: CdnConfig;
  /** The config file's path (named in the generated bird.conf). */
  source?: string;
  /** The service to check: an edge's base URL, or a DNS node's UDP address. */
  check: AnnouncerProcessOptions["check"];
  /** Lines of the announcer's log (JSON events and BIRD's lines); default: this process's stdout. */
  log?: (line: string) => void;
}

export interface RunningAnycast {
  /** Withdraws the prefixes for good, then waits `withdraw_grace_ms`: after it, stop serving. */
  withdraw(): Promise<void>;
  /** Ends the announcer and BIRD (withdrawing first if that did not happen). */
  stop(): Promise<void>;
  /** The announcer's current pid (it changes when it is restarted). */
  pid(): number | undefined;
  /** The last ready message: BIRD's pid, the generated config, the control socket (for birdc -s), metrics URL. */
  info(): Extract<ChildMessage, { type: "ready" }>;
}

/** From the project root, so it is found from the DNS node's bundle too (dist/dns/, src/node/dns-bundle.ts). */
const ENTRY = resolve(import.meta.dirname, "../..", "src/anycast/announcer-process.ts");

/** Starts the announcer for this box when `[anycast]` names `service`; undefined when it does not. */
export async function startAnycast(service: "edge" | "dns", opts: StartAnycastOptions): Promise<RunningAnycast | undefined> {
  const anycast = opts.config.anycast;
  if (anycast?.service !== service) return undefined;
  const token = opts.config.admin.token;
  const options: AnnouncerProcessOptions = {
    anycast,
    source: opts.source ?? "cdn.toml",
    check: opts.check.kind === "http" ? { ...opts.check, url: loopbackUrl(opts.check.url) } : { ...opts.check, host: loopbackHost(opts.check.host) },
    report: opts.check.kind === "http" && token ? { url: loopbackUrl(opts.check.url), token } : undefined,
  };
  const log = opts.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  let child: ChildProcess | undefined;
  let ready: Extract<ChildMessage, { type: "ready" }>;
  let stopping = false;
  let backoff = 1000;
  let restartTimer: NodeJS.Timeout | undefined;

  const announce = (r: Extract<ChildMessage, { type: "ready" }>) => {
    log(`anycast: announcer pid ${child?.pid}, BIRD pid ${r.birdPid}, config ${r.configPath}; birdc -s ${r.socketPath} show protocols`);
    if (r.metricsUrl) log(`anycast: metrics ${r.metricsUrl}/metrics, status ${r.metricsUrl}/status.json`);
  };
  const launch = (): Promise<Extract<ChildMessage, { type: "ready" }>> => {
    const c = spawn("setpriv", ["--pdeathsig", "KILL", "--", process.execPath, ENTRY], {
      stdio: ["ignore", "pipe", "pipe", "ipc"],
      detached: true, // its own process group: a terminal's Ctrl-C or a group kill reaches it only through us
    });
    child = c;
    pipeLines(c, log);
    const startedAt = Date.now();
    c.once("exit", (code, signal) => {
      if (child === c) child = undefined;
      if (stopping) return;
      if (Date.now() - startedAt > 60_000) backoff = 1000; // it had been running fine: not a crash loop
      log(`anycast: announcer pid ${c.pid} exited (${code ?? signal}); BIRD went with it, routes withdrawn; restarting in ${backoff} ms`);
      restartTimer = setTimeout(() => {
        launch().then(
          (r) => {
            ready = r;
            log(`anycast: announcer restarted`);
            announce(r);
          },
          (err: Error) => log(`anycast: announcer restart failed: ${err.message}`),
        );
      }, backoff);
      backoff = Math.min(backoff * 2, 30_000);
    });
    return new Promise((ok, fail) => {
      const onMessage = (m: ChildMessage) => {
        if (m.type === "ready") ok(m);
        if (m.type === "failed") fail(new Error(m.error));
      };
      c.on("message", onMessage);
      c.once("exit", (code, signal) => fail(new Error(`the announcer exited at start (${code ?? signal})`)));
      c.once("error", (err) => fail(new Error(`cannot start the announcer (setpriv, node): ${err.message}`)));
      c.send({ type: "start", options });
    });
  };

  try {
    ready = await launch();
  } catch (err) {
    stopping = true;
    clearTimeout(restartTimer);
    child?.kill("SIGKILL");
    throw err;
  }
  announce(ready);

  /** Asks the current announcer to withdraw; resolves when it says it has (or it is gone: its BIRD is dead too). */
  const askWithdraw = (): Promise<void> => {
    const c = child;
    if (!c?.connected) return Promise.resolve();
    return new Promise((done) => {
      const finish = () => {
        c.off("message", onMessage);
        done();
      };
      const onMessage = (m: ChildMessage) => m.type === "withdrawn" && finish();
      c.on("message", onMessage);
      c.once("exit", finish);
      c.send({ type: "withdraw" });
    });
  };

  return {
    pid: () => child?.pid,
    info: () => ready,
    async withdraw() {
      stopping = true; // a planned stop: no announcer is started again from here on
      clearTimeout(restartTimer);
      const started = Date.now();
      await askWithdraw();
      log(`anycast: withdrawn in ${Date.now() - started} ms; waiting ${anycast.withdraw_grace_ms} ms (withdraw_grace_ms) before the service stops`);
      await new Promise((r) => setTimeout(r, anycast.withdraw_grace_ms));
    },
    async stop() {
      stopping = true;
      clearTimeout(restartTimer);
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((r) => c.once("exit", () => r()));
      if (c.connected) c.send({ type: "stop" });
      else c.kill("SIGTERM");
      const timer = setTimeout(() => c.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The box's own listener seen from the box: a wildcard address becomes loopback. */
function loopbackHost(host: string): string {
  return host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
}

function loopbackUrl(url: string): string {
  const u = new URL(url);
  const bare = u.hostname.replace(/^\[|\]$/g, "");
  const local = loopbackHost(bare);
  if (local !== bare) u.hostname = local.includes(":") ? `[${local}]` : local;
  return u.origin;
}

function pipeLines(c: ChildProcess, log: (line: string) => void) {
  for (const stream of [c.stdout!, c.stderr!]) {
    let rest = "";
    stream.on("data", (chunk: Buffer) => {
      const lines = (rest + chunk.toString()).split("\n");
      rest = lines.pop()!;
      for (const line of lines) if (line) log(line);
    });
  }
}
