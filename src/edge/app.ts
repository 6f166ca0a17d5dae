/**
 * The edge worker's HTTP surface (Hono): health, the operator endpoints (purge, metrics, trace), then everything
 * else through the cache engine.
 */
import { Hono } from "hono";
import type { CdnConfig } from "../config/config.ts";
import { clientAddress, peerAddress } from "../net/client-address.ts";
import { formatIp, parseCidr, type Cidr } from "../net/ip.ts";
import {
  CONTROL_PATH,
  DRAIN_PATH,
  handleControl,
  handleDrain,
  handleMetrics,
  handlePurge,
  handlePurgeMethod,
  handleTrace,
  METRICS_PATH,
  PURGE_PATH,
  TRACE_PATH,
  type ControlBinding,
} from "./admin.ts";
import { parseBootId } from "../control/boot.ts";
import { HEALTH_PATH } from "../health/monitor.ts";
import { isAuthorized } from "../net/admin-auth.ts";
import { EdgeCache, type KeyLocks } from "./engine.ts";
import { EdgeObserver, type EdgeStoreStats } from "./observe.ts";
import { isLoop, originFetcher, type FetchLike } from "./origin.ts";
import type { EntryStore } from "./store.ts";

export interface EdgeAppOptions {
  config: CdnConfig;
  store: EntryStore;
  fetch?: FetchLike;
  now?: () => number;
  /** Where the client is, for the trace (GeoIP when the host provides it). */
  locate?: (ip: string) => string | undefined;
  log?: (line: string) => void;
  /** Coalescing locks shared by the processes of an edge box (bare workerd: held by the store process). */
  locks?: KeyLocks;
  /** Store and hot-tier stats for the metrics (bare workerd). */
  stats?: () => Promise<EdgeStoreStats | undefined>;
  /** With `[control]`: the box's control agent (purges and drains go through it) and this box start's id. */
  control?: ControlBinding;
  bootId?: string;
}

/** Builds the edge application for one isolate. */
export function createEdgeApp({ config, store, fetch: fetchImpl = (i, init) => fetch(i, init), now, locate = () => undefined, log, locks, stats, control, bootId }: EdgeAppOptions) {
  const edge = config.edge;
  if (!edge) throw new Error("cdn.toml has no [edge] table: this worker has no origin to serve");
  const observer = new EdgeObserver(edge.name, edge.access_log, log);
  const origin = observer.wrapOrigin(originFetcher(edge, fetchImpl));
  // With a control plane, entries older than this box start are stale until its agent has caught up.
  const boot = config.control ? parseBootId(bootId) : undefined;
  const cache = new EdgeCache({ edge, rules: config.rules, store, origin, now, locks, boot });
  const trusted = edge.trusted_proxies.map((c) => parseCidr(c)).filter((c): c is Cidr => c !== null);
  const clientIp = (request: Request) => {
    const bytes = clientAddress(peerAddress(request), request.headers.get("x-forwarded-for"), trusted);
    return bytes ? formatIp(bytes) : undefined;
  };
  const app = new Hono();

  // Health for DNS nodes' probes: "ok", or "draining" (503) while the edge should leave DNS answers.
  app.get(HEALTH_PATH, async (c) =>
    (await cache.isDraining())
      ? c.text(`draining ${edge.name}\n`, 503, { "cache-control": "no-store" })
      : c.text(`ok ${edge.name}\n`, 200, { "cache-control": "no-store" }),
  );
  app.post(DRAIN_PATH, (c) => handleDrain(c.req.raw, config, cache, control));
  app.all(PURGE_PATH, (c) => handlePurge(c.req.raw, config, cache, fetchImpl, control));
  app.all(CONTROL_PATH, (c) => handleControl(c.req.raw, config, cache, boot?.id));
  // PURGE <url>: an authenticated purge of that URL; never forwarded to the origin like other methods.
  app.on("PURGE", "*", (c) => handlePurgeMethod(c.req.raw, config, cache, fetchImpl, control));
  // Metrics: always at the well-known path; at /metrics only with the token (else /metrics is the origin's page).
  app.get(METRICS_PATH, (c) => handleMetrics(c.req.raw, config, observer, stats));
  app.get("/metrics", async (c, next) => {
    if (await isAuthorized(c.req.raw, config.admin.token)) return handleMetrics(c.req.raw, config, observer, stats);
    await next();
  });
  app.get(TRACE_PATH, (c) => handleTrace(c.req.raw, config, clientIp(c.req.raw), locate));

  app.all("*", async (c) => {
    const request = c.req.raw;
    if (isLoop(request, edge.name)) {
      return c.text("508 loop detected: this request already passed through this edge\n", 508);
    }
    const started = Date.now();
    const ip = clientIp(request);
    const response = await cache.handle(request, { waitUntil: (p) => c.executionCtx.waitUntil(p), clientIp: ip });
    observer.answered(request, response, ip, started);
    return response;
  });

  return app;
}
