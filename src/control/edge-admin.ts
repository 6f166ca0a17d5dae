/**
 * The control agent's calls to its own edge over loopback, through the edge's authenticated operator endpoints:
 * purge here only (`"fanout": false`), drain here only, read and write the control mark, read health.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { ControlMark, PurgeRequest } from "../cache/purge.ts";

/** What GET /.well-known/cdn/control answers. */
export interface EdgeControlState {
  edge: string;
  boot: string | null;
  mark: ControlMark | null;
  caughtUp: boolean;
}

export class EdgeAdmin {
  private readonly base: URL;
  private readonly token: string;

  /** `baseUrl`: the edge's own address (0.0.0.0 / :: are reached on loopback). */
  constructor(baseUrl: string, token: string) {
    const base = new URL(baseUrl);
    if (base.hostname === "0.0.0.0") base.hostname = "127.0.0.1";
    if (base.hostname === "[::]") base.hostname = "[::1]";
    this.base = base;
    this.token = token;
  }

  async state(): Promise<EdgeControlState> {
    return JSON.parse(await this.call("GET", "/.well-known/cdn/control")) as EdgeControlState;
  }

  async setMark(mark: Omit<ControlMark, "at">): Promise<void> {
    await this.call("POST", "/.well-known/cdn/control", mark);
  }

  /**
   * Purges here only, in the edge's purge log alone (a batch costs the edge a few store calls however many URLs it
   * holds); with `mark`, also records "applied up to mark.seq" in the same write.
   */
  async purge(req: PurgeRequest, mark?: Omit<ControlMark, "at">): Promise<void> {
    await this.call("POST", "/.well-known/cdn/purge", { ...req, fanout: false, log_only: true, ...(mark ? { mark } : {}) });
  }

  async drain(draining: boolean): Promise<void> {
    await this.call("POST", "/.well-known/cdn/drain", { draining, fanout: false });
  }

  /** "ok", "draining", or why the health endpoint could not be read; with [anycast], the announcement it names. */
  async health(): Promise<{ health: string; anycast?: "announced" | "withdrawn" }> {
    try {
      let anycast: string | undefined;
      const text = await this.call("GET", "/.well-known/cdn/health", undefined, [200, 503], (h) => (anycast = h["cdn-anycast"]?.toString().trim()));
      return { health: text.split(" ")[0]!.trim(), ...(anycast === "announced" || anycast === "withdrawn" ? { anycast } : {}) };
    } catch (err) {
      return { health: `unreachable: ${(err as Error).message}`.slice(0, 200) };
    }
  }

  /** One request within 10 s; the body text, or an error naming the status. */
  private call(method: string, path: string, body?: unknown, okStatus = [200], headers?: (h: NodeJS.Dict<string | string[]>) => void): Promise<string> {
    const url = new URL(path, this.base);
    const data = body === undefined ? undefined : JSON.stringify(body);
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(
        url,
        {
          method,
          // The edge is this box's own, on loopback: its certificate names the public host, not 127.0.0.1.
          rejectUnauthorized: false,
          timeout: 10_000,
          headers: {
            authorization: `Bearer ${this.token}`,
            ...(data ? { "content-type": "application/json", "content-length": Buffer.byteLength(data) } : {}),
          },
        },
        (res) => {
          headers?.(res.headers);
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (text += c));
          res.on("end", () => {
            if (okStatus.includes(res.statusCode!)) resolve(text);
            else reject(new Error(`${method} ${path}: ${res.statusCode} ${text.trim().slice(0, 200)}`));
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)));
      req.on("error", reject);
      req.end(data);
    });
  }
}
