/**
 * Requests to the origin: the client's end-to-end headers, X-Forwarded-For/-Proto/-Host and Via set by us (never
 * the client's own, which would let it poison what the origin generates), CDN-Loop (RFC 8586) against loops,
 * redirects passed through rather than followed, and a time limit for the response headers.
 */
import type { EdgeConfig } from "../config/edge-schema.ts";
import { endToEnd } from "../cache/headers.ts";

/** Client headers that must not reach the origin: forged forwarding data and URL/method overrides. */
const UNTRUSTED_REQUEST_HEADERS = [
  "host",
  "forwarded",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-proto",
  "x-forwarded-port",
  "x-real-ip",
  "x-original-url",
  "x-rewrite-url",
  "x-http-method-override",
  "cf-connecting-ip",
  "true-client-ip",
];

/** The origin did not answer in time. */
export class OriginTimeout extends Error {
  constructor(ms: number) {
    super(`origin sent no response headers within ${ms} ms`);
    this.name = "OriginTimeout";
  }
}

export interface OriginRequest {
  method: string;
  /** Extra or replaced headers (conditionals for revalidation); `null` deletes. */
  headers?: Record<string, string | null>;
  body?: ReadableStream<Uint8Array> | null;
  /** Drop these client headers (e.g. Range and conditionals when the cache fetches a whole response). */
  drop?: string[];
}

export type FetchLike = (input: Request | string, init?: RequestInit) => Promise<Response>;

/** The origin URL for a client URL: the configured origin's scheme, host and path prefix + the client's path. */
export function originUrl(origin: string, clientUrl: URL): string {
  const base = new URL(origin);
  const prefix = base.pathname.replace(/\/$/, "");
  return `${base.protocol}//${base.host}${prefix}${clientUrl.pathname}${clientUrl.search}`;
}

/** Builds the function that forwards a client request to the origin. */
export function originFetcher(edge: EdgeConfig, fetchImpl: FetchLike = fetch) {
  return async (client: Request, clientIp: string | undefined, req: OriginRequest): Promise<Response> => {
    const url = new URL(client.url);
    const headers = endToEnd(client.headers, [...UNTRUSTED_REQUEST_HEADERS, ...(req.drop ?? [])]);
    if (clientIp) headers.set("x-forwarded-for", clientIp);
    headers.set("x-forwarded-proto", url.protocol.replace(":", ""));
    headers.set("x-forwarded-host", url.host);
    appendList(headers, "via", `1.1 ${edge.name}`);
    appendList(headers, "cdn-loop", edge.name);
    for (const [name, value] of Object.entries(req.headers ?? {})) {
      if (value === null) headers.delete(name);
      else headers.set(name, value);
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new OriginTimeout(edge.origin_timeout_ms)), edge.origin_timeout_ms);
    try {
      const init: RequestInit & { duplex?: string } = {
        method: req.method,
        headers,
        body: req.body ?? null,
        redirect: "manual",
        signal: controller.signal,
      };
      if (req.body) init.duplex = "half";
      // Race the abort too: not every fetch implementation gives up on headers the moment the signal fires.
      const aborted = new Promise<never>((_, reject) =>
        controller.signal.addEventListener("abort", () => reject(new OriginTimeout(edge.origin_timeout_ms))),
      );
      return await Promise.race([fetchImpl(originUrl(edge.origin, url), init), aborted]);
    } catch (err) {
      if (controller.signal.aborted) throw new OriginTimeout(edge.origin_timeout_ms);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  };
}

function appendList(headers: Headers, name: string, value: string) {
  const existing = headers.get(name);
  headers.set(name, existing ? `${existing}, ${value}` : value);
}

/** Whether a request has already passed through this edge (CDN-Loop, RFC 8586). */
export function isLoop(request: Request, edgeName: string): boolean {
  const loop = request.headers.get("cdn-loop");
  if (!loop) return false;
  return loop.split(",").some((entry) => entry.trim().split(";")[0]!.trim() === edgeName);
}
