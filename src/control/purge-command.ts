/**
 * `npm run purge` with `[control]`: publish the purge to the control stream (the NATS credentials of `[control]`
 * authorize it, not the admin token), then report which edges have applied it — for `report_ms`, or with `--wait`
 * until every known edge has (at most the timeout), naming the ones still pending.
 */
import type { PurgeRequest } from "../cache/purge.ts";
import type { CdnConfig } from "../config/config.ts";
import { configuredEdges } from "./agent.ts";
import { ControlClient } from "./client.ts";
import { connectOnce } from "./nats.ts";
import type { AppliedSummary } from "./presence.ts";

export interface PurgeCommandOptions {
  /** Only these edges apply it (and are waited for). */
  targets?: string[];
  /** Wait until every known edge has applied it, at most `timeoutMs`. */
  wait: boolean;
  timeoutMs: number;
}

/** The per-edge lines: `ok   a`, `pending c: why`. */
export function summaryLines(summary: AppliedSummary): string[] {
  return [...summary.applied.map((e) => `ok   ${e}`), ...summary.pending.map((p) => `pending ${p.edge}: ${p.detail}`)];
}

/** Runs the purge; prints through `out` / `err`; the exit status (0 stored [and applied everywhere with wait], 1 not). */
export async function purgeThroughControl(
  config: CdnConfig,
  req: PurgeRequest,
  opts: PurgeCommandOptions,
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  const cfg = config.control!;
  let client: ControlClient;
  try {
    const nc = await connectOnce(cfg, "parrot-cdn purge");
    client = await ControlClient.open(nc, cfg, configuredEdges(config)).catch(async (e) => {
      await nc.close();
      throw e;
    });
  } catch (e) {
    err(`purge: NOT stored: control plane unreachable (${cfg.servers.join(", ")}): ${(e as Error).message}`);
    return 1;
  }
  try {
    let published;
    try {
      published = await client.publishPurge(req, opts.targets);
    } catch (e) {
      err(`purge: NOT stored: ${(e as Error).message}`);
      return 1;
    }
    const notes = [
      ...(published.parts > 1 ? [`${published.parts} messages`] : []),
      ...(published.retries ? [`after ${published.retries} ${published.retries > 1 ? "retries" : "retry"}: ${published.retried}`] : []),
    ];
    out(`stored: sequence ${published.seq} of ${client.names.controlStream}${notes.length ? ` (${notes.join("; ")})` : ""}`);
    const summary = await client.waitApplied(published, opts.wait ? opts.timeoutMs : cfg.report_ms, opts.targets, !opts.wait);
    for (const line of summaryLines(summary)) out(line);
    if (opts.wait && summary.pending.length) {
      err(`purge: stored, but not applied within ${Math.round(opts.timeoutMs / 1000)} s at: ${summary.pending.map((p) => p.edge).join(", ")}`);
      return 1;
    }
    return 0;
  } finally {
    await client.connection.close().catch(() => undefined);
  }
}
