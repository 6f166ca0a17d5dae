/**
 * A control-plane CDN on one real nats-server where one box reaches NATS only through a TCP proxy the test can cut
 * (`proxy.cut`) and restore: the partition, heartbeat, shield-lag and function-deploy tests share this setup.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NATS_USER, startControlCdn, type ControlCdn, type ControlCdnOptions } from "./control-cdn.ts";
import { startTestNats, type TestNats } from "./nats.ts";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.ts";

export interface CutOffCdn {
  nats: TestNats;
  /** Between the `cut` box and NATS. */
  proxy: TcpProxy;
  cdn: ControlCdn;
  stop(): Promise<void>;
}

/** Starts NATS, the proxy and the CDN (`opts` without servers); `cut` is the box behind the proxy. */
export async function startCutOffCdn(cut: string, opts: Omit<ControlCdnOptions, "servers" | "serversFor">): Promise<CutOffCdn> {
  const dir = mkdtempSync(join(tmpdir(), "parrot-nats-"));
  const nats = await startTestNats(dir, NATS_USER);
  const proxy = await startTcpProxy(nats.options.port);
  let cdn: ControlCdn | undefined;
  const stop = async () => {
    await cdn?.stop();
    await proxy.close();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    cdn = await startControlCdn({ ...opts, servers: [nats.url], serversFor: { [cut]: [`nats://127.0.0.1:${proxy.port}`] } });
  } catch (err) {
    await stop();
    throw err;
  }
  return { nats, proxy, cdn, stop };
}
