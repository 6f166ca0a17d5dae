/**
 * What the edge, a site's function process (its harness and its outbound gate) and the box's watchdog agree on.
 * These names travel only on the box's own unix sockets (in the run directory, mode 0700): a client's header of
 * the same name never reaches a function as such (the edge sets or removes each one before it forwards).
 */

/** The function process's socket reads `request.cf` (JSON) from this header (workerd's `cfBlobHeader`) and removes it. */
export const FUNCTION_CF_HEADER = "x-parrot-cf";
/** The request URL's scheme, as the client used it (workerd's `forwardedProtoHeader` on the function's socket). */
export const FUNCTION_PROTO_HEADER = "x-parrot-proto";
/** On a function's answer: the function threw (the harness caught it); the edge applies the site's `on_error`. */
export const FUNCTION_ERROR_HEADER = "x-parrot-function-error";
/** On the gate's answer to a function's fetch(): refused (a host outside the function's hosts and allow_hosts). */
export const FUNCTION_REFUSED_HEADER = "x-parrot-function-refused";
/** The watchdog's probe: the harness answers it before any function code runs (the isolate got back to its event loop). */
export const FUNCTION_PROBE_PATH = "/.well-known/cdn/function-alive";
/** The binding name of function slot `k` in the edge worker's env (which function is in it: FUNCTION_SLOTS_FILE). */
export const functionBinding = (k: number) => `FN_${k}`;
/** Beside the edge's cdn.toml (bare workerd): a FunctionsFile, written by the host, read by the edge once a second. */
export const FUNCTION_SLOTS_FILE = "functions.json";
export interface FunctionsFile {
  /** Which FN_<slot> binding runs each function. */
  slots: Record<string, number>;
  /** The version each function runs now (`v3`, or the module's path). */
  versions: Record<string, string>;
  /** Per function and version since the box started: CPU time of its processes (sampled), watchdog kills. */
  processes: { id: string; version: string; cpu_ms: number; watchdog_kills: number }[];
}
/**
 * On a function's fetch() back to the edge: `<id> <token>`, injected by the function process's own workerd
 * (`injectRequestHeaders` on its engine service, which replaces a header of that name the function set), so the
 * edge knows which function asks and applies its hosts and allow_hosts. token = functionToken(the box's key, id).
 */
export const FUNCTION_ID_HEADER = "x-parrot-function";
/**
 * The trace's run through a function (`/.well-known/cdn/trace?url=…&run=1`): on the request the edge sends to the
 * function (any client's header of this name is removed first), so the harness records what the function did; on
 * each fetch() the function then makes (the harness adds it), so the edge answers it with its cache's steps.
 */
export const FUNCTION_TRACE_HEADER = "x-parrot-trace";
/** On the function's answer to a traced request: JSON FunctionTraceReport (the harness's record). */
export const FUNCTION_TRACE_REPORT_HEADER = "x-parrot-trace-function";
/** On the edge's answer to a traced fetch() of a function: JSON CacheSteps (what the cache did for it). */
export const FUNCTION_TRACE_CACHE_HEADER = "x-parrot-trace-cache";
/** What the cache did for one request: its status, and the origin (or shield) when it was asked. */
export interface CacheSteps {
  cache: string;
  origin?: { status?: number; ms: number };
  shield?: string;
}
export interface FunctionTraceReport {
  /** Each fetch() the function made while it answered the traced request, in order. */
  fetches: { method: string; url: string; status?: number; error?: string; cache?: CacheSteps }[];
}
/** The box host's socket for the edge (bare workerd, `[[functions]]`): GET /cpu/<id> answers `{"cpu_ms": n}`. */
export const FUNCTION_HOST_CPU_PATH = "/cpu/";
