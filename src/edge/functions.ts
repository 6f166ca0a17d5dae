/**
 * The edge's one hook for `[[functions]]`: a request for a host (and path) with a function goes to that function's
 * process (the FN_<slot> binding functions.json names for it) with `request.cf` on the box's internal channel; the function answers, or passes to
 * the cache by its own fetch() (which comes back in through the edge's `fromFunction` entrypoint, never to a
 * function again). When the function throws, does not answer within timeout_ms, or its process is down, the
 * site's `on_error` decides: "cache" serves the request as if there were no function, "503" answers 503.
 */
import type { FunctionConfig } from "../config/functions-schema.ts";
import {
  FUNCTION_CF_HEADER,
  FUNCTION_ERROR_HEADER,
  FUNCTION_ID_HEADER,
  FUNCTION_PROTO_HEADER,
  FUNCTION_REFUSED_HEADER,
  FUNCTION_TRACE_HEADER,
  FUNCTION_TRACE_REPORT_HEADER,
  type FunctionsFile,
  type FunctionTraceReport,
} from "../contracts/functions.ts";
import { functionCf } from "../functions/cf.ts";
import { functionIdentity } from "../functions/identity.ts";
import { functionFor } from "../functions/match.ts";
import { outboundDecision } from "../functions/outbound.ts";
import type { GeoInfo } from "../geoip/types.ts";
import { textResponse } from "./transaction.ts";

export interface FunctionBindings {
  /** The process of the function with this id; none when the box does not run it. */
  get(id: string): Fetcher | undefined;
  /** The box's key for the functions' identity on their fetch() back (src/functions/identity.ts); none: all refused. */
  key?: string;
  /** Public addresses only: where a function's fetch() to one of its `allow_hosts` goes. */
  internet?: Fetcher;
  /** The version a function runs (for its access-log lines), and its processes' figures (for the metrics). */
  version?(id: string): string | undefined;
  processes?(): FunctionsFile["processes"];
  /** CPU time (ms) of the function's current process, from the box host (the trace); undefined: unknown. */
  cpuMs?(id: string): Promise<number | undefined>;
}

/** Why a function did not answer, for the log and the metrics. */
export type FunctionFailure = "threw" | "timeout" | "down" | "not-running";

export interface FunctionRoute {
  /**
   * The function's answer (or its on_error's 503) and the function's id; undefined = serve through the cache (no
   * function, or on_error = "cache").
   */
  answer(request: Request, url: URL, clientIp: () => string | undefined): Promise<{ response: Response; id: string } | undefined>;
  /** The trace's run: the request through its function (undefined: none runs it), with what the function did. */
  trace(request: Request, url: URL, clientIp: () => string | undefined): Promise<FunctionTrace | undefined>;
}

/** What a function did with one traced request. */
export interface FunctionTrace {
  id: string;
  version?: string;
  onError: FunctionConfig["on_error"];
  outcome: "answered" | FunctionFailure;
  /** Its answer (or its on_error's 503), body read; undefined: the request is served through the cache. */
  response?: Response;
  /** The fetch() calls it made and what the cache did for each (the harness's record). */
  report?: FunctionTraceReport;
  /** CPU time of its process from the request sent to the answer's body read (other requests it served meanwhile count too). */
  cpuMs?: number;
}

export function functionRoute(
  functions: readonly FunctionConfig[],
  bindings: FunctionBindings,
  colo: string,
  locate: (ip: string) => GeoInfo | undefined,
  log: (line: string) => void = (l) => console.error(l),
  /** Each routed request's outcome, for the metrics. */
  count: (id: string, outcome: "answered" | FunctionFailure) => void = () => {},
): FunctionRoute {
  // One line per function and reason every 10 s at most (with the count): a function that is down is not a log flood.
  const logged = new Map<string, { at: number; more: number }>();
  const failed = (fn: FunctionConfig, why: FunctionFailure, detail = "", noted?: FunctionTrace): Response | undefined => {
    count(fn.id, why);
    if (noted) noted.outcome = why;
    const key = `${fn.id} ${why}`;
    const last = logged.get(key);
    const now = Date.now();
    if (last && now - last.at < 10_000) last.more++;
    else {
      const more = last?.more ? ` (and ${last.more} more since the last line)` : "";
      log(`function ${fn.id}: ${why}${detail ? ` (${detail})` : ""}; on_error = ${fn.on_error}${more}`);
      logged.set(key, { at: now, more: 0 });
    }
    return fn.on_error === "cache" ? undefined : textResponse(503, `503 the site's edge function is unavailable (${why})\n`);
  };
  return {
    async answer(request, url, clientIp) {
      if (!functions.length) return undefined;
      const fn = functionFor(functions, url.hostname, url.pathname);
      if (!fn) return undefined;
      const response = await answerBy(fn, request, url, clientIp);
      return response && { response, id: fn.id };
    },
    async trace(request, url, clientIp) {
      const fn = functionFor(functions, url.hostname, url.pathname);
      if (!fn) return undefined;
      const noted: FunctionTrace = { id: fn.id, version: bindings.version?.(fn.id), onError: fn.on_error, outcome: "answered" };
      const cpu = () => bindings.cpuMs?.(fn.id).catch(() => undefined);
      const before = await cpu();
      const response = await answerBy(fn, request, url, clientIp, noted);
      if (response) {
        // Read whole, so that the CPU time covers a function that streams its body.
        const body = await response.arrayBuffer();
        const report = response.headers.get(FUNCTION_TRACE_REPORT_HEADER);
        if (report) noted.report = JSON.parse(report) as FunctionTraceReport;
        noted.response = new Response(body, response);
        noted.response.headers.delete(FUNCTION_TRACE_REPORT_HEADER);
      }
      const after = await cpu();
      if (before !== undefined && after !== undefined) noted.cpuMs = after - before;
      return noted;
    },
  };

  async function answerBy(fn: FunctionConfig, request: Request, url: URL, clientIp: () => string | undefined, noted?: FunctionTrace): Promise<Response | undefined> {
    const target = bindings.get(fn.id);
    if (!target) return failed(fn, "not-running", "its process is not running: see the box's log", noted);
    const ip = clientIp();
    const headers = new Headers(request.headers);
    // The client's own copies of the internal headers are replaced, never passed on.
    headers.set(FUNCTION_CF_HEADER, JSON.stringify(functionCf(colo, ip ? locate(ip) : undefined)));
    headers.set(FUNCTION_PROTO_HEADER, url.protocol === "https:" ? "https" : "http");
    if (noted) headers.set(FUNCTION_TRACE_HEADER, "1");
    else headers.delete(FUNCTION_TRACE_HEADER);
    if (ip) headers.set("cf-connecting-ip", ip);
    else headers.delete("cf-connecting-ip");
    const hasBody = request.body !== null;
    // The bound is on the answer's head: a function streaming a long body is not cut.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), fn.timeout_ms);
    let answer: Response;
    const send = () => target.fetch(url.toString(), { method: request.method, headers, body: request.body, redirect: "manual", signal: abort.signal });
    try {
      // A kept-alive connection to a process being replaced (it drains: it finishes what it took and closes the
      // rest) can be lost before the request was taken: a request without a body is sent again, once, and the
      // new connection reaches the process that serves now.
      answer = await send().catch((err: unknown) => {
        if (hasBody || abort.signal.aborted || (request.method !== "GET" && request.method !== "HEAD")) throw err;
        return send();
      });
    } catch (err) {
      const why = abort.signal.aborted ? "timeout" : "down";
      // A body already sent cannot be served again through the cache.
      if (hasBody && fn.on_error === "cache") return failed({ ...fn, on_error: "503" }, why, "the request's body was sent to it", noted);
      return failed(fn, why, (err as Error).message, noted);
    } finally {
      clearTimeout(timer);
    }
    if (answer.headers.has(FUNCTION_ERROR_HEADER)) {
      await answer.body?.cancel();
      if (hasBody && fn.on_error === "cache") return failed({ ...fn, on_error: "503" }, "threw", "the request's body was sent to it", noted);
      return failed(fn, "threw", "", noted);
    }
    count(fn.id, "answered");
    return answer;
  }
}

/**
 * A function's own fetch(), arriving on the edge's socket for functions: which function sent it (FUNCTION_ID_HEADER,
 * injected by its process's workerd), then where it may go (src/functions/outbound.ts): its own hosts → the request
 * to serve through the cache (the identity removed); `allow_hosts` → public addresses, answered here; anything
 * else, or no valid identity → 403 marked refused. This is the function's outbound gate: it runs in the edge, not in
 * an isolate of its own in the function's process (an isolate's entry per fetch() cost more CPU than the rest of
 * the gate's work; docs/functions.md).
 */
export function functionOutbound(
  functions: readonly FunctionConfig[],
  bindings: FunctionBindings,
): (request: Request, url: URL) => Promise<{ cache: Request } | { answer: Response }> {
  const identify = bindings.key ? functionIdentity(bindings.key) : async () => undefined;
  const refused = (reason: string) => ({
    answer: new Response(`403 refused by the edge: ${reason}\n`, {
      status: 403,
      headers: { "content-type": "text/plain; charset=utf-8", [FUNCTION_REFUSED_HEADER]: "1" },
    }),
  });
  return async (request, url) => {
    const id = await identify(request.headers.get(FUNCTION_ID_HEADER));
    const fn = id === undefined ? undefined : functions.find((f) => f.id === id);
    if (!fn) return refused("not from a function of this box");
    const decision = outboundDecision(url, fn.hosts, fn.allow_hosts);
    if (decision.to === "refused") return refused(decision.reason);
    const headers = new Headers(request.headers);
    headers.delete(FUNCTION_ID_HEADER);
    const out = new Request(request, { headers });
    if (decision.to === "engine") return { cache: out };
    if (!bindings.internet) return refused("no way out from this box");
    return { answer: await bindings.internet.fetch(out) };
  };
}
