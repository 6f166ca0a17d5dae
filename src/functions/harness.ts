/**
 * The main module of a site's function worker: it imports the site's own module (`./function.js`), answers the
 * watchdog's probe before any of the site's code runs, and turns an exception into a marked answer so the edge
 * applies the site's `on_error` (an answer the function itself made with status 500 stays the function's).
 */
import fn from "./function.js";
import { FUNCTION_ERROR_HEADER, FUNCTION_PROBE_PATH } from "../contracts/functions.ts";

export default {
  async fetch(request: Request, env: unknown, ctx: ExecutionContext): Promise<Response> {
    // The edge never forwards its own /.well-known/cdn/ paths to a function: this is the watchdog.
    if (request.url.endsWith(FUNCTION_PROBE_PATH)) return new Response("alive\n");
    try {
      if (typeof fn?.fetch !== "function") throw new TypeError("the module's default export has no fetch(request, env, ctx)");
      const answer = await fn.fetch(request, env, ctx);
      if (!(answer instanceof Response)) throw new TypeError("fetch() did not return a Response");
      return answer;
    } catch (err) {
      console.error(`function threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      return new Response(null, { status: 500, headers: { [FUNCTION_ERROR_HEADER]: "threw" } });
    }
  },
};
