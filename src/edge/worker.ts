/** Worker entry of the edge: wrangler dev, Miniflare and bare workerd all load this module. */
import { parseConfig } from "../config/config.ts";
import { embeddedConfigText } from "../config/embedded.ts";
import { createEdgeApp } from "./app.ts";
import { HotTier } from "./hot-tier.ts";
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
      const config = parseConfig(text);
      const edge = config.edge;
      // The hot tier (off when hot_max_bytes = 0) in front of the Cache API: the disk store on bare workerd.
      const store = new HotTier(new CacheApiStore(caches.default), {
        maxBytes: edge?.hot_max_bytes ?? 0,
        maxObjectBytes: edge?.hot_max_object_bytes ?? 0,
      });
      built = { text, app: createEdgeApp({ config, store }) };
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
