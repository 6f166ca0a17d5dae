/**
 * `npm run fn -- dev worker.ts`: a site's function under Miniflare on this machine, as the edge would run it:
 * request.cf from the project's own GeoIP data for a chosen client address (Miniflare's `cf` option: no fetch of
 * Cloudflare's cf.json), the [[functions]] entry's vars and secrets when --config names one for this module, and
 * its fetch() sent to a local edge (--edge) with the request's Host kept, as on a box it goes through the cache.
 */
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { dirname, resolve } from "node:path";
import type { FunctionConfig } from "../config/functions-schema.ts";
import { functionCf } from "../functions/cf.ts";
import { bundleModule } from "./bundle.ts";
import { configPath, loadConfigFile } from "./config-file.ts";
import { loadGeoIp } from "./dns-geoip.ts";
import { wranglerCompat } from "./edge-host.ts";
import { parseSecrets } from "./functions-config.ts";

export interface FunctionDevOptions {
  module: string;
  /** The local edge the function's fetch() goes to (else its fetch() goes where its URL says). */
  edge?: string;
  port: number;
  /** The address request.cf describes (default 81.2.69.142, London in the GeoIP test data and the embedded data). */
  clientIp?: string;
  config?: string;
}

/** request.cf for `clientIp` (default 81.2.69.142) from the config's [geoip] files, else the embedded data. */
export async function localCf(config: string | undefined, clientIp = "81.2.69.142") {
  const file = config ? loadConfigFile(config) : undefined;
  const geo = await loadGeoIp(file?.config.geoip, file ? file.dir : process.cwd());
  return functionCf("dev", geo.geoip.lookup(clientIp)?.info);
}

export async function runFunctionDev(opts: FunctionDevOptions): Promise<void> {
  const file = opts.config ? loadConfigFile(opts.config) : undefined;
  const entry: FunctionConfig | undefined = file?.config.functions.find((f) => configPath(file, f.module) === opts.module);
  const clientIp = opts.clientIp ?? "81.2.69.142";
  const cf = await localCf(opts.config, clientIp);
  const secrets = entry?.secrets_file && file ? parseSecrets(readFileSync(configPath(file, entry.secrets_file), "utf8"), entry.secrets_file) : {};
  const code = new TextDecoder().decode(await bundleModule(opts.module));
  const compat = wranglerCompat();
  const mf = new Miniflare({
    ...convertV4MiniflareOptions({
      modules: true,
      script: code,
      scriptPath: resolve(dirname(opts.module), "function.js"),
      compatibilityDate: entry?.compatibility_date ?? compat.compatibilityDate,
      compatibilityFlags: entry?.compatibility_flags ?? [],
      bindings: { ...(entry?.vars ?? {}), ...secrets },
      cf,
      host: "127.0.0.1",
      port: opts.port,
      ...(opts.edge ? { outboundService: (request: Request) => forwardTo(opts.edge!, request) } : {}),
    } as never),
  } as never);
  const url = await mf.ready;
  console.log(`fn dev: ${opts.module} at ${url.origin}; request.cf = ${JSON.stringify(cf)} (client ${clientIp}, --client-ip to change)`);
  console.log(opts.edge ? `fn dev: its fetch() goes to the edge ${opts.edge} (Host kept)` : "fn dev: its fetch() goes where its URL says (--edge URL sends it to a local edge)");
  const stop = () => void mf.dispose().finally(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

/** A fetch() of the function, sent to the edge with its Host header kept (fetch() cannot set Host). */
async function forwardTo(edge: string, request: Request): Promise<Response> {
  const target = new URL(edge);
  const url = new URL(request.url);
  const body = request.body ? Buffer.from(await request.arrayBuffer()) : undefined;
  const headers = Object.fromEntries(request.headers);
  headers.host = url.host;
  return new Promise((done, fail) => {
    const req = httpRequest({ host: target.hostname, port: target.port, method: request.method, path: url.pathname + url.search, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) for (const one of [v].flat()) h.append(k, one);
        const status = res.statusCode ?? 502;
        done(new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), { status, headers: h }));
      });
    });
    req.on("error", fail);
    req.end(body);
  });
}
