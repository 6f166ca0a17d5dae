/**
 * The agent's HTTP API for its own edge, on a unix socket only the box's user can open (mode 0600): the edge
 * worker's CONTROL binding points here. The edge has already checked the operator's token.
 *
 *   POST /purge  a purge body (as /.well-known/cdn/purge takes it) → published; 200 every known edge applied it,
 *                202 stored and some pending (named), 503 not stored (the control plane is unreachable, or did not
 *                acknowledge within `publish_deadline_ms` of retries: the reason says which)
 *   POST /drain  {"draining": bool} for this edge → published; 200, or 503 not stored
 * A publish JetStream does not acknowledge (a leader election, a hung server) is retried with the same message id;
 * the answer says how many times and why (`retries`, `retried`).
 *   GET  /status the agent's state
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import { chmodSync, rmSync } from "node:fs";
import { parsePurgeRequest } from "../cache/purge.ts";
import type { ControlConfig } from "../config/control-schema.ts";
import type { AgentStatus } from "./agent.ts";
import type { ControlClient, Published } from "./client.ts";

export interface ControlApiDeps {
  self: string;
  cfg: ControlConfig;
  /** The client while connected; undefined while the control plane is unreachable. */
  client: () => ControlClient | undefined;
  /** Whether the agent is reconnecting (not given up): a call waits a little for it. */
  reconnecting: () => boolean;
  status: () => AgentStatus;
  lastError: () => string;
}

/** How long a call waits for a connection that is being re-established (the agent moving off a hung server). */
const RECONNECT_WAIT_MS = 5_000;

/** Largest request body taken (a purge of 4 × 1000 long URLs fits). */
const MAX_BODY = 8 * 1024 * 1024;

export interface ApiAnswer {
  status: number;
  body: unknown;
}

export class ControlApi {
  private readonly deps: ControlApiDeps;
  private server: Server | undefined;
  private socketPath = "";

  constructor(deps: ControlApiDeps) {
    this.deps = deps;
  }

  listen(socketPath: string): Promise<void> {
    this.socketPath = socketPath;
    rmSync(socketPath, { force: true });
    const server = createServer((req, res) => {
      void this.route(req).then(
        (a) => res.writeHead(a.status, { "content-type": "application/json" }).end(JSON.stringify(a.body, null, 2) + "\n"),
        (err) => res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error: (err as Error).message }) + "\n"),
      );
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => {
        chmodSync(socketPath, 0o600);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(this.socketPath, { force: true });
  }

  private async route(req: IncomingMessage): Promise<ApiAnswer> {
    const path = new URL(req.url ?? "/", "http://control").pathname;
    if (req.method === "GET" && path === "/status") return { status: 200, body: this.deps.status() };
    if (req.method !== "POST" || (path !== "/purge" && path !== "/drain")) return { status: 404, body: { error: "no such control call" } };
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch (err) {
      return { status: 400, body: { error: `the body must be JSON (${(err as Error).message})` } };
    }
    return path === "/purge" ? this.purge(body) : this.drain(body);
  }

  /** Publishes a purge and collects "applied" reports for up to `report_ms`. */
  async purge(body: unknown): Promise<ApiAnswer> {
    const request = parsePurgeRequest(body);
    if (typeof request === "string") return { status: 400, body: { error: request } };
    const client = await this.connectedClient();
    if (!client) return this.unreachable("purge");
    let published;
    try {
      published = await client.publishPurge(request);
    } catch (err) {
      return { status: 503, body: { stored: false, error: (err as Error).message } };
    }
    const summary = await client.waitApplied(published, this.deps.cfg.report_ms, undefined, true);
    return {
      status: summary.pending.length ? 202 : 200,
      body: { stored: true, ...streamFields(client, published), parts: published.parts, ...retryFields(published), ...summary },
    };
  }

  /** Publishes a drain of this edge; waits up to `report_ms` for this box to have applied it. */
  async drain(body: unknown): Promise<ApiAnswer> {
    const draining = (body as { draining?: unknown } | null)?.draining;
    if (typeof draining !== "boolean") return { status: 400, body: { error: '"draining" must be true or false' } };
    const client = await this.connectedClient();
    if (!client) return this.unreachable("drain");
    try {
      const published = await client.publishDrain(this.deps.self, draining);
      const summary = await client.waitApplied(published, this.deps.cfg.report_ms, [this.deps.self]);
      return {
        status: 200,
        body: { stored: true, ...streamFields(client, published), ...retryFields(published), applied: summary.applied.includes(this.deps.self) },
      };
    } catch (err) {
      return { status: 503, body: { stored: false, error: (err as Error).message } };
    }
  }

  /** The client, waiting up to RECONNECT_WAIT_MS while the agent reconnects. */
  private async connectedClient(): Promise<ControlClient | undefined> {
    const deadline = Date.now() + RECONNECT_WAIT_MS;
    for (;;) {
      const client = this.deps.client();
      if (client || !this.deps.reconnecting() || Date.now() >= deadline) return client;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private unreachable(what: string): ApiAnswer {
    const why = this.deps.lastError();
    return {
      status: 503,
      body: { stored: false, error: `control plane unreachable (${this.deps.cfg.servers.join(", ")}${why ? `: ${why}` : ""}): the ${what} was not stored` },
    };
  }
}

/** The stream's name, the message's sequence, and the stream's creation time (a recreated stream numbers anew). */
function streamFields(client: ControlClient, published: Published) {
  return { stream: client.names.controlStream, seq: published.seq, streamCreated: published.stream };
}

function retryFields(published: Published) {
  return published.retries ? { retries: published.retries, retried: published.retried } : {};
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        req.destroy();
        reject(new Error(`more than ${MAX_BODY} bytes`));
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
