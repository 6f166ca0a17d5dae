/** Worker entry of the edge: wrangler dev, Miniflare and bare workerd all load this module. */
import { parseConfig } from "../config/config.ts";
import { embeddedConfigText } from "../config/embedded.ts";
import { createEdgeApp } from "./app.ts";
import { CacheApiStore } from "./store.ts";

export interface Env {
  /** cdn.toml's text; empty means the embedded default. */
  CDN_CONFIG?: string;
}

let built: { text: string; app: ReturnType<typeof createEdgeApp> } | { text: string; error: Error } | undefined;

function appFor(env: Env) {
  const text = env.CDN_CONFIG || embeddedConfigText;
  if (built?.text !== text) {
    try {
      built = { text, app: createEdgeApp({ config: parseConfig(text), store: new CacheApiStore(caches.default) }) };
    } catch (error) {
      built = { text, error: error as Error };
    }
  }
  return built;
}

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext): Response | Promise<Response> {
    const b = appFor(env);
    if ("error" in b) {
      return new Response(`500 edge misconfigured\n${b.error.message}\n`, {
        status: 500,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    return b.app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
