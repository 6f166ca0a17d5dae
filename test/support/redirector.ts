/** For the redirector tests: a redirector box (`scripts/redirector.ts`) and the `[redirector]` table they share. */
import { startNodeScript, type Running } from "../../src/node/children.ts";

export interface RedirectorBox {
  run: Running;
  /** Where it answers (its "redirector ready" line). */
  url: string;
}

/** Starts a redirector box on `config` (port 0: a free one), named `name` in a fleet. */
export async function startRedirectorBox(config: string, opts: { name?: string; port?: number } = {}): Promise<RedirectorBox> {
  const args = ["--config", config, "--port", String(opts.port ?? 0), ...(opts.name ? ["--name", opts.name] : [])];
  const run = await startNodeScript("scripts/redirector.ts", args, /redirector ready: (\S+)/, 60_000);
  return { run, url: run.match[1]! };
}

/**
 * `[redirector]` for ISO files under /iso/ listed in /iso/SHA256SUMS at `origin` (also the CDN), scanned only when a
 * test asks; `extra` lines join the table.
 */
export function isoRedirectorToml(origin: string, extra = ""): string {
  return `[redirector]
origin = "${origin}"
cdn = "${origin}"
paths = ["/iso/**"]
indexes = [ { path = "/iso/SHA256SUMS", kind = "sha256sums" } ]
scan_interval_ms = 3600000
${extra}
`;
}
