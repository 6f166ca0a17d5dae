/**
 * A control-plane CDN on one real nats-server (NATS_USER), and the same with one box that reaches NATS only through a
 * TCP proxy the test can cut (`proxy.cut`) and restore: the purge, outage and fleet tests share the first, the
 * partition, heartbeat, shield-lag and function-deploy tests the second.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NATS_USER, startControlCdn, type ControlCdn, type ControlCdnOptions } from "./control-cdn.ts";
import { startTestNats, type TestNats } from "./nats.ts";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.ts";

export interface NatsCdn {
  nats: TestNats;
  cdn: ControlCdn;
  /** Stops the CDN, then NATS (and the proxy); removes NATS's folder. */
  stop(): Promise<void>;
}

export interface CutOffCdn extends NatsCdn {
  /** Between the `cut` box and NATS. */
  proxy: TcpProxy;
}

type Options = Omit<ControlCdnOptions, "servers" | "serversFor">;

/** Starts NATS and the CDN on it (`opts` without servers). */
export async function startNatsCdn(opts: Options): Promise<NatsCdn> {
  const { nats, cdn, stop } = await startOnNats(opts);
  return { nats, cdn, stop };
}

/** Starts NATS, the proxy and the CDN (`opts` without servers); `cut` is the box behind the proxy. */
export async function startCutOffCdn(cut: string, opts: Options): Promise<CutOffCdn> {
  const { nats, cdn, stop, proxy } = await startOnNats(opts, cut);
  return { nats, cdn, stop, proxy: proxy! };
}

async function startOnNats(opts: Options, cut?: string): Promise<NatsCdn & { proxy?: TcpProxy }> {
  const dir = mkdtempSync(join(tmpdir(), "parrot-nats-"));
  let nats: TestNats | undefined;
  let proxy: TcpProxy | undefined;
  let cdn: ControlCdn | undefined;
  const stop = async () => {
    await cdn?.stop();
    await proxy?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    nats = await startTestNats(dir, NATS_USER);
    proxy = cut === undefined ? undefined : await startTcpProxy(nats.options.port);
    cdn = await startControlCdn({ ...opts, servers: [nats.url], serversFor: cut === undefined ? undefined : { [cut]: [`nats://127.0.0.1:${proxy!.port}`] } });
  } catch (err) {
    await stop();
    throw err;
  }
  return { nats, cdn, stop, proxy };
}
