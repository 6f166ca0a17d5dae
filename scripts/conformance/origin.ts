/**
 * The conformance origin: a node:http server on 127.0.0.1 that answers each check's requests from the check's own
 * script. URLs are /t/<token>[/<file>][?<query>]; the client's request number travels in the `Req-Num` header (the
 * edge forwards it), so a revalidation or a background refresh is answered by the step that caused it.
 *
 * Every answer carries bookkeeping headers the runner reads back through the cache:
 *   Server-Request-Count   how many requests the origin has seen for this token, this one included
 *   Server-Now             the origin's clock (ms) when it answered; relative dates in scripts are offsets from it
 *   Server-Base-Url        the request's path, for scripted Location / Content-Location values
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Check, HeaderSpec, Step } from "./checks.ts";

/** What the origin saw for one request of a check. */
export interface SeenRequest {
  /** The client request number it carried (Req-Num), NaN when absent. */
  clientNum: number;
  method: string;
  /** Lower-case names; repeated fields joined with ", ". */
  headers: Record<string, string>;
  /** The scripted headers the cache is expected to pass on unchanged: [name, value]. */
  passThrough: [string, string][];
}

export const httpDate = (nowMs: number, offsetSeconds: number) => new Date(nowMs + offsetSeconds * 1000).toUTCString();

const DATE_FIELDS = new Set(["date", "expires", "last-modified", "if-modified-since", "if-unmodified-since"]);

/** A scripted header value: numbers in date fields are offsets in seconds from `now`; locations are made absolute paths. */
export function resolveHeader(spec: HeaderSpec, step: Step, nowMs: number, basePath: string): string {
  const [name, value] = spec;
  const lower = name.toLowerCase();
  if (typeof value === "number") return DATE_FIELDS.has(lower) ? httpDate(nowMs, value) : String(value);
  if (step.magicLocations && (lower === "location" || lower === "content-location")) return `${basePath}/${value}`;
  return value;
}

export class ConformanceOrigin {
  private checks = new Map<string, { check: Check; seen: SeenRequest[]; sent: Map<number, [string, string][]> }>();
  private server?: Server;
  url = "";

  register(token: string, check: Check) {
    this.checks.set(token, { check, seen: [], sent: new Map() });
  }
  seen(token: string): SeenRequest[] {
    return this.checks.get(token)?.seen ?? [];
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        try {
          res.writeHead(500, { "content-type": "text/plain" }).end(`origin error: ${(err as Error).message}`);
        } catch {
          res.destroy();
        }
      });
    });
    this.server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop() {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", "http://origin");
    const parts = url.pathname.split("/");
    const token = parts[1] === "t" ? parts[2] : undefined;
    const entry = token ? this.checks.get(token) : undefined;
    // Drain any request body first.
    for await (const _ of req) void _;
    if (!token || !entry) return void res.writeHead(404, { "content-type": "text/plain" }).end("unknown check\n");

    const serverNum = entry.seen.length + 1;
    const clientNum = Number.parseInt(String(req.headers["req-num"] ?? ""), 10);
    const num = Number.isNaN(clientNum) ? serverNum : clientNum;
    const step = entry.check.steps[num - 1];
    if (!step) return void res.writeHead(409, { "content-type": "text/plain" }).end(`no step ${num}\n`);
    if (step.originDelay) await new Promise((r) => setTimeout(r, step.originDelay! * 1000));

    const now = Date.now();
    let status = step.status ?? 200;
    let reason: string | undefined;
    if (step.expect === "etag_validated" || step.expect === "lm_validated") {
      // Answer 304 only when the cache sent the validator the previous step's response carried; else a 999 marker.
      // (the values as last sent for the previous step, relative dates resolved)
      const prevScripted = (entry.check.steps[num - 2]?.resHeaders ?? []).filter(
        (h): h is [string, string] | [string, string, boolean] => typeof h[1] === "string",
      );
      const prevHeaders: [string, string][] =
        entry.sent.get(num - 1) ?? prevScripted.map(([n, v]): [string, string] => [n, v]);
      const lm = prevHeaders.find(([n]) => n.toLowerCase() === "last-modified");
      const etag = prevHeaders.find(([n]) => n.toLowerCase() === "etag");
      const ims = req.headers["if-modified-since"];
      const inm = req.headers["if-none-match"];
      const matches = (lm && ims === lm[1]) || (etag && inm === etag[1]);
      if (matches) status = 304;
      else {
        status = 999;
        reason = "304 Not Generated";
      }
    }

    const basePath = url.pathname;
    const out = new Map<string, string[]>();
    const add = (name: string, value: string) => {
      const key = name.toLowerCase();
      const list = out.get(key) ?? [];
      list.push(value);
      out.set(key, list);
    };
    add("Server-Base-Url", basePath);
    add("Server-Request-Count", String(serverNum));
    add("Client-Request-Count", String(clientNum));
    add("Server-Now", String(now));
    const names = new Map<string, string>();
    const passThrough = new Map<string, string[]>();
    const sent: [string, string][] = [];
    entry.sent.set(num, sent);
    for (const spec of step.resHeaders ?? []) {
      const value = resolveHeader(spec, step, now, basePath);
      sent.push([spec[0], value]);
      add(spec[0], value);
      names.set(spec[0].toLowerCase(), spec[0]);
      if (spec[2] !== false) passThrough.set(spec[0].toLowerCase(), out.get(spec[0].toLowerCase())!);
    }
    if (!out.has("content-type")) add("Content-Type", "text/plain");

    entry.seen.push({
      clientNum,
      method: req.method ?? "GET",
      headers: Object.fromEntries(
        Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : String(v ?? "")]),
      ),
      passThrough: [...passThrough].map(([k, v]) => [names.get(k) ?? k, v.join(", ")]),
    });

    res.statusCode = status;
    if (reason) res.statusMessage = reason;
    for (const [name, values] of out) {
      const display = names.get(name) ?? name;
      try {
        res.setHeader(display, values.length === 1 ? values[0]! : values);
      } catch {
        /* a value node refuses to send: leave it out */
      }
    }
    res.setHeader("Request-Numbers", entry.seen.map((s) => s.clientNum).join(" "));
    if (status === 204 || status === 304) return void res.end();
    const body = step.resBody ?? token;
    try {
      res.end(req.method === "HEAD" ? undefined : body);
    } catch {
      res.destroy();
    }
  }
}
