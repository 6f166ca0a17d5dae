/**
 * The front door's HTTP/3 listener: Caddy (caddy-config.ts) kept running beside HAProxy, started after it (its
 * upstream is HAProxy's h3 socket), loaded again through its admin socket when the sites or a certificate change,
 * and started again if it dies. Its own log lines above INFO go to the box's output as `caddy: …`.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { createSocket } from "node:dgram";
import { join } from "node:path";
import { keepRunning, type Kept } from "../node/process.ts";
import { CADDY_ADMIN_HOST, caddyConfig, type CaddyConfigInput } from "./caddy-config.ts";
import type { FrontDoorPlan } from "./plan.ts";

export interface QuicDoorOptions {
  binary?: string;
  /** For Caddy's config file and storage (the front door's private run directory). */
  runDir: string;
  /** For its admin socket (a short path: unix socket paths hold 107 bytes). */
  sockDir: string;
  host: string;
  /** UDP (and TCP) port: Caddy binds its own sockets (freePort finds one for tests). */
  port: number;
  upstreamSocket: string;
  plan: FrontDoorPlan;
  certificates: CaddyConfigInput["certificates"];
  log: (line: string) => void;
}

export interface QuicDoor {
  /** Loads a new plan or certificate set (certificate files are read again even when the text is the same). */
  reload(plan: FrontDoorPlan, certificates: CaddyConfigInput["certificates"]): Promise<void>;
  stop(): Promise<void>;
}

const READY_MS = 20_000;

/** A port free for both TCP and UDP on `host` now (Caddy binds both; it cannot be given a socket). */
export async function freePort(host: string): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const server = createServer();
    const port = await new Promise<number>((ok, fail) => {
      server.once("error", fail);
      server.listen({ host, port: 0 }, () => ok((server.address() as AddressInfo).port));
    });
    const udp = createSocket(host.includes(":") ? "udp6" : "udp4");
    const free = await new Promise<boolean>((ok) => {
      udp.once("error", () => ok(false));
      udp.bind({ address: host, port, exclusive: true }, () => ok(true));
    });
    await new Promise<void>((r) => udp.close(() => r())).catch(() => undefined);
    await new Promise<void>((r) => server.close(() => r()));
    if (free) return port;
  }
  throw new Error(`no port free for both TCP and UDP on ${host}`);
}

/** Caddy's JSON log line → a line for the box's output, or undefined for what an operator need not read. */
export function caddyLogLine(line: string): string | undefined {
  let entry: { level?: string; msg?: string; error?: string; logger?: string };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    return line.trim() ? `caddy: ${line}` : undefined;
  }
  if (entry.level === "info" || entry.level === "debug") return undefined;
  // Expected here: Caddy manages no certificate, and a local or test certificate names no OCSP responder.
  if (entry.msg === "automatic HTTPS is completely disabled for server") return undefined;
  if (entry.msg === "stapling OCSP" && /no OCSP server specified/.test(entry.error ?? "")) return undefined;
  return `caddy: ${entry.level ?? "?"} ${entry.logger ? `${entry.logger}: ` : ""}${entry.msg ?? ""}${entry.error ? `: ${entry.error}` : ""}`;
}

/** Starts Caddy; resolves once it serves its first configuration. */
export async function startQuicDoor(opts: QuicDoorOptions): Promise<QuicDoor> {
  const dataDir = join(opts.runDir, "caddy");
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const configPath = join(opts.runDir, "caddy.json");
  const adminSocket = join(opts.sockDir, "caddy.sock");
  const hostPart = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  const configText = (plan: FrontDoorPlan, certificates: CaddyConfigInput["certificates"]) =>
    JSON.stringify(caddyConfig({ plan, listen: `${hostPart}:${opts.port}`, certificates, upstreamSocket: opts.upstreamSocket, adminSocket, dataDir }), null, 1);
  writeFileSync(configPath, configText(opts.plan, opts.certificates), { mode: 0o600 });

  let output = "";
  let ready: () => void = () => undefined;
  const started = new Promise<void>((r) => (ready = r));
  let pending = "";
  const kept: Kept = keepRunning(
    {
      command: opts.binary ?? "caddy",
      args: ["run", "--config", configPath],
      // Caddy would otherwise keep its state under $HOME.
      env: { ...process.env, HOME: dataDir, XDG_DATA_HOME: dataDir, XDG_CONFIG_HOME: dataDir },
      group: true,
      log: (text) => {
        pending += text;
        const lines = pending.split("\n");
        pending = lines.pop()!;
        for (const line of lines) {
          if (output.length < 64_000) output += line + "\n";
          if (line.includes('"msg":"serving initial configuration"')) ready();
          const shown = caddyLogLine(line);
          if (shown) opts.log(shown);
        }
      },
    },
    { onRestart: () => opts.log(`caddy: started again (HTTP/3 on udp ${hostPart}:${opts.port})`) },
  );
  const exited = new Promise<string>((r) => kept.current.once("exit", (code, sig) => r(`exit ${code ?? sig}`)));
  const timeout = new Promise<string>((r) => setTimeout(() => r(`not ready within ${READY_MS} ms`), READY_MS).unref());
  const outcome = await Promise.race([started.then(() => "ready"), exited, timeout]);
  if (outcome !== "ready") {
    await kept.stop();
    throw new Error(`caddy (HTTP/3 on udp ${hostPart}:${opts.port}) did not start (${outcome}):\n${output.slice(-4000)}`);
  }
  return {
    reload: (plan, certificates) => {
      const text = configText(plan, certificates);
      writeFileSync(configPath, text, { mode: 0o600 });
      return loadConfig(adminSocket, text);
    },
    stop: () => kept.stop(),
  };
}

/** POST /load to Caddy's admin socket; `must-revalidate` makes it read certificate files again even for the same text. */
function loadConfig(socketPath: string, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        path: "/load",
        method: "POST",
        headers: { host: CADDY_ADMIN_HOST, "content-type": "application/json", "cache-control": "must-revalidate" },
        timeout: 15_000,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`caddy refused the new config (${res.statusCode}): ${body.trim()}`))));
      },
    );
    req.on("timeout", () => req.destroy(new Error("caddy's admin socket did not answer within 15 s")));
    req.on("error", reject);
    req.end(text);
  });
}
