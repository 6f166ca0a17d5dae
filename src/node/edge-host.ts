/** Runs the edge worker under Miniflare (workerd underneath) on a loopback or public socket. */
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { bundleWorker, ROOT } from "./bundle.ts";
import { unixSocketFetch } from "../control/host.ts";

export interface EdgeHostOptions {
  /** cdn.toml text the worker receives. */
  configText: string;
  host?: string;
  port?: number;
  /** Folder where the Cache API keeps entries across restarts (omit: in memory). */
  persistDir?: string;
  /** With [control]: the box's control agent (unix socket), bound as CONTROL, and this box start's id (BOOT_ID). */
  control?: { socketPath: string; bootId: string };
}

export interface RunningEdge {
  url: string;
  stop(): Promise<void>;
}

/** The compatibility date and flags of wrangler.toml, so every runtime runs the worker the same way. */
export function wranglerCompat(): { compatibilityDate: string; compatibilityFlags: string[] } {
  const w = parseToml(readFileSync(resolve(ROOT, "wrangler.toml"), "utf8")) as {
    compatibility_date: string;
    compatibility_flags?: string[];
  };
  return { compatibilityDate: w.compatibility_date, compatibilityFlags: w.compatibility_flags ?? [] };
}

export async function startEdgeMiniflare(opts: EdgeHostOptions): Promise<RunningEdge> {
  const scriptPath = await bundleWorker("src/edge/worker.ts", "edge");
  const mf = new Miniflare({
    ...convertV4MiniflareOptions({
      modules: true,
      scriptPath,
      ...wranglerCompat(),
      bindings: { CDN_CONFIG: opts.configText, ...(opts.control ? { BOOT_ID: opts.control.bootId } : {}) },
      ...(opts.control ? { serviceBindings: { CONTROL: unixSocketFetch(opts.control.socketPath) } } : {}),
      host: opts.host ?? "127.0.0.1",
      port: opts.port ?? 0,
      cf: false,
    } as never),
    ...(opts.persistDir ? { resourcePersistencePath: opts.persistDir } : {}),
  } as never);
  const url = await mf.ready;
  return { url: url.origin, stop: () => mf.dispose() };
}
