/** The edge worker's HTTP surface (Hono): the health endpoint, then everything else through the cache engine. */
import { Hono } from "hono";
import type { CdnConfig } from "../config/config.ts";
import { clientAddress, peerAddress } from "../net/client-address.ts";
import { formatIp, parseCidr, type Cidr } from "../net/ip.ts";
import { EdgeCache } from "./engine.ts";
import { isLoop, originFetcher, type FetchLike } from "./origin.ts";
import type { EntryStore } from "./store.ts";

export interface EdgeAppOptions {
  config: CdnConfig;
  store: EntryStore;
  fetch?: FetchLike;
  now?: () => number;
}

/** Builds the edge application for one isolate. */
export function createEdgeApp({ config, store, fetch: fetchImpl, now }: EdgeAppOptions) {
  const edge = config.edge;
  if (!edge) throw new Error("cdn.toml has no [edge] table: this worker has no origin to serve");
  const cache = new EdgeCache({ edge, rules: config.rules, store, origin: originFetcher(edge, fetchImpl), now });
  const trusted = edge.trusted_proxies.map((c) => parseCidr(c)).filter((c): c is Cidr => c !== null);
  const app = new Hono();

  app.get("/.well-known/cdn/health", (c) => c.text(`ok ${edge.name}\n`, 200, { "cache-control": "no-store" }));

  app.all("*", async (c) => {
    const request = c.req.raw;
    if (isLoop(request, edge.name)) {
      return c.text("508 loop detected: this request already passed through this edge\n", 508);
    }
    const ctx = {
      waitUntil: (p: Promise<unknown>) => c.executionCtx.waitUntil(p),
      clientIp: clientIpText(clientAddress(peerAddress(request), request.headers.get("x-forwarded-for"), trusted)),
    };
    return cache.handle(request, ctx);
  });

  return app;
}

function clientIpText(bytes: Uint8Array | null): string | undefined {
  return bytes ? formatIp(bytes) : undefined;
}
