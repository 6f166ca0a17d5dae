/**
 * For the tests of one edge box on bare workerd: an origin on a loopback port and the box in front of it, its store in
 * a temporary folder of its own; one stop() for all three.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serveFetch, type FetchHandler, type Served } from "../../src/node/serve-fetch.ts";
import { startEdgeWorkerd, type RunningWorkerdEdge, type WorkerdEdgeOptions } from "../../src/node/workerd-host.ts";

export interface EdgeAndOrigin {
  edge: RunningWorkerdEdge;
  origin: Served;
  /** The temporary folder: the store is its `store`. */
  dir: string;
  /** Stops the box and the origin, removes the folder. */
  stop(): Promise<void>;
}

/**
 * Serves `handler` as the origin and starts the box on `config(origin's URL)` (quiet unless `log` is given);
 * `name` names the temporary folder.
 */
export async function startEdgeAndOrigin(
  name: string,
  handler: FetchHandler,
  config: (originUrl: string) => string,
  opts: Omit<WorkerdEdgeOptions, "configText" | "storeDir"> = {},
): Promise<EdgeAndOrigin> {
  const dir = mkdtempSync(join(tmpdir(), `parrot-${name}-`));
  const origin = await serveFetch(handler);
  const stopOrigin = async () => {
    await origin.close();
    rmSync(dir, { recursive: true, force: true });
  };
  let edge: RunningWorkerdEdge;
  try {
    edge = await startEdgeWorkerd({ log: () => {}, ...opts, configText: config(origin.url), storeDir: join(dir, "store") });
  } catch (err) {
    await stopOrigin();
    throw err;
  }
  return {
    edge,
    origin,
    dir,
    async stop() {
      await edge.stop();
      await stopOrigin();
    },
  };
}
