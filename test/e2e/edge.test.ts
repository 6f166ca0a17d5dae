/**
 * The edge scenarios against `npm run edge` as a real process on a random loopback port, over real HTTP, once per
 * runtime: bare workerd with the project's disk store (the default), the same with two edge processes and a store
 * process (`--processes 2`; its hot tier off: each process has its own, and an invalidation by an unsafe method
 * reaches only the hot tier of the process that served it), and Miniflare (`--runtime miniflare`).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe } from "vitest";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { edgeScenarios } from "../support/edge-scenarios.ts";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { ScriptedOrigin } from "../support/scripted-origin.ts";

const RUNTIMES: [string, string[], boolean][] = [
  ["workerd", ["--runtime", "workerd"], true],
  ["workerd --processes 2", ["--runtime", "workerd", "--processes", "2"], false],
  ["miniflare", ["--runtime", "miniflare"], true],
];

describe.each(RUNTIMES)("runtime %s", (_runtime, runtimeArgs, hotTier) => {
  const origin = new ScriptedOrigin();
  let served: Served;
  let edge: Running;
  let edgeUrl: string;
  let storeDir: string;

  beforeAll(async () => {
    served = await serveFetch(origin.handle);
    storeDir = mkdtempSync(join(tmpdir(), "parrot-edge-e2e-"));
    const config = join(storeDir, "cdn.toml");
    const text = readFileSync("cdn.toml", "utf8");
    writeFileSync(config, hotTier ? text : text.replace(/^\[edge\]$/m, "[edge]\nhot_max_bytes = 0"));
    edge = await startNodeScript(
      "scripts/edge.ts",
      ["--config", config, "--origin", served.url, "--port", "0", "--name", "e2e", ...runtimeArgs, "--store", join(storeDir, "store")],
      /edge ready: (\S+)/,
    );
    edgeUrl = edge.match[1]!;
  });

  afterAll(async () => {
    await edge?.stop();
    await served?.close();
    if (storeDir) rmSync(storeDir, { recursive: true, force: true });
  });

  edgeScenarios(() => ({
    edge: (path, init) => fetch(`${edgeUrl}${path}`, init),
    script: async (path, script) => origin.set(path, script),
    hits: async (path) => origin.hitsOf(path),
  }));
});
