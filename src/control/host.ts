/**
 * What the edge box command (`npm run edge`) does for the control plane: before the edge starts, a box start id and
 * the agent's socket path (both go into the edge's bindings); once it listens, the agent, waited for (bounded) until
 * it has caught up.
 */
import { mkdirSync, mkdtempSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CdnConfig } from "../config/config.ts";
import { startControlAgent, type ControlAgent } from "./agent.ts";
import { newBootId } from "./boot.ts";

export interface PreparedControl {
  bootId: string;
  socketPath: string;
}

/**
 * A box start id and the agent's socket in `runDir` (or a private temp dir when that path is too long). Throws,
 * naming the field, when the config cannot run an agent.
 */
export function prepareControl(config: CdnConfig, runDir: string): PreparedControl {
  if (!config.admin.token) throw new Error("admin.token: [control] needs an admin token: the control agent reaches its edge's admin endpoints with it");
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  let socketPath = join(runDir, "control.sock");
  // sun_path holds 108 bytes.
  if (socketPath.length > 100) socketPath = join(mkdtempSync(join(tmpdir(), "parrot-control-")), "control.sock");
  return { bootId: newBootId(), socketPath };
}

/**
 * Starts the box's agent for the edge listening at `edgeUrl` and waits up to `[control] catch_up_timeout_ms` for
 * its catch-up, saying what happened through `say`. The edge serves meanwhile (older entries revalidated).
 */
export async function runControlAgent(config: CdnConfig, prepared: PreparedControl, edgeUrl: string, say: (line: string) => void): Promise<ControlAgent> {
  const cfg = config.control!;
  const agent = await startControlAgent({ config, edgeUrl, bootId: prepared.bootId, socketPath: prepared.socketPath });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const result = await Promise.race([
    agent.caughtUp,
    new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), cfg.catch_up_timeout_ms))),
  ]);
  clearTimeout(timer);
  const where = cfg.servers.join(", ");
  const at = new Date().toISOString();
  if (result) say(`${at} control: NATS JetStream ${where}; caught up at sequence ${result.seq} (boot ${prepared.bootId})`);
  else {
    const s = agent.status();
    say(
      `${at} control: NATS JetStream ${where}; NOT caught up within ${cfg.catch_up_timeout_ms} ms (${s.lastError || "still replaying"}): ` +
        `entries stored before this start are revalidated until it is`,
    );
  }
  return agent;
}

/** A fetch over a unix socket (Miniflare's CONTROL service binding to the agent). */
export function unixSocketFetch(socketPath: string): (req: Request) => Promise<Response> {
  return async (req) => {
    const body = req.body ? Buffer.from(await req.arrayBuffer()) : undefined;
    const url = new URL(req.url);
    return new Promise((resolve, reject) => {
      const r = request(
        { socketPath, path: url.pathname + url.search, method: req.method, headers: Object.fromEntries(req.headers) },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve(new Response(Buffer.concat(chunks), { status: res.statusCode, headers: { "content-type": res.headers["content-type"] ?? "application/json" } })),
          );
          res.on("error", reject);
        },
      );
      r.on("error", reject);
      r.end(body);
    });
  };
}
