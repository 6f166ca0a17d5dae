/**
 * The main module of a site's function worker: it imports the site's own module (`./function.js`), answers the
 * watchdog's probe before any of the site's code runs, and turns an exception into a marked answer so the edge
 * applies the site's `on_error` (an answer the function itself made with status 500 stays the function's).
 *
 * A traced request (FUNCTION_TRACE_HEADER, set only by the edge's trace run) is answered with a record of the
 * fetch() calls the function made for it and what the cache did for each (FUNCTION_TRACE_REPORT_HEADER). The calls
 * are told apart from other requests' by AsyncLocalStorage (the process's `nodejs_als` flag), so a function that
 * builds its own Request objects is traced as well as one that passes its request on.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import fn from "./function.js";
import {
  FUNCTION_ERROR_HEADER,
  FUNCTION_PROBE_PATH,
  FUNCTION_TRACE_CACHE_HEADER,
  FUNCTION_TRACE_HEADER,
  FUNCTION_TRACE_REPORT_HEADER,
  type FunctionTraceReport,
} from "../contracts/functions.ts";

const traced = new AsyncLocalStorage<FunctionTraceReport>();
/** Since this process started: the requests the function was given and how many it threw on (the probe says them). */
let requests = 0;
let threw = 0;
const send = globalThis.fetch;
globalThis.fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
  const report = traced.getStore();
  if (!report) return send(input, init);
  const request = new Request(input as RequestInfo, init);
  request.headers.set(FUNCTION_TRACE_HEADER, "1");
  const entry: FunctionTraceReport["fetches"][number] = { method: request.method, url: request.url };
  report.fetches.push(entry);
  try {
    const answer = await send(request);
    entry.status = answer.status;
    const cache = answer.headers.get(FUNCTION_TRACE_CACHE_HEADER);
    if (cache) entry.cache = JSON.parse(cache) as FunctionTraceReport["fetches"][number]["cache"];
    return answer;
  } catch (err) {
    entry.error = err instanceof Error ? err.message : String(err);
    throw err;
  }
};

export default {
  async fetch(request: Request, env: unknown, ctx: ExecutionContext): Promise<Response> {
    // The edge never forwards its own /.well-known/cdn/ paths to a function: this is the watchdog.
    // Its answer carries the counts, for the box's canary window (a function version's error rate).
    if (request.url.endsWith(FUNCTION_PROBE_PATH)) return new Response(`alive ${requests} ${threw}\n`);
    requests++;
    if (!request.headers.has(FUNCTION_TRACE_HEADER)) return answer(request, env, ctx);
    const report: FunctionTraceReport = { fetches: [] };
    const plain = new Request(request);
    plain.headers.delete(FUNCTION_TRACE_HEADER);
    const answered = await traced.run(report, () => answer(plain, env, ctx));
    const out = new Response(answered.body, answered);
    out.headers.set(FUNCTION_TRACE_REPORT_HEADER, JSON.stringify(report));
    return out;
  },
};

async function answer(request: Request, env: unknown, ctx: ExecutionContext): Promise<Response> {
  try {
    if (typeof fn?.fetch !== "function") throw new TypeError("the module's default export has no fetch(request, env, ctx)");
    const answer = await fn.fetch(request, env, ctx);
    if (!(answer instanceof Response)) throw new TypeError("fetch() did not return a Response");
    return answer;
  } catch (err) {
    threw++;
    console.error(`function threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return new Response(null, { status: 500, headers: { [FUNCTION_ERROR_HEADER]: "threw" } });
  }
}
