/**
 * The edge scenarios against `npm run edge` as a real process on a random loopback port, over real HTTP, once per
 * runtime: bare workerd with the project's disk store (the default) and Miniflare (`--runtime miniflare`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe } from "vitest";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { edgeScenarios } from "../support/edge-scenarios.ts";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { ScriptedOrigin } from "../support/scripted-origin.ts";

describe.each(["workerd", "miniflare"])("runtime %s", (runtime) => {
  const origin = new ScriptedOrigin();
  let served: Served;
  let edge: Running;
  let edgeUrl: string;
  let storeDir: string;

  beforeAll(async () => {
    served = await serveFetch(origin.handle);
    storeDir = mkdtempSync(join(tmpdir(), "parrot-edge-e2e-"));
    edge = await startNodeScript(
      "scripts/edge.ts",
      ["--origin", served.url, "--port", "0", "--name", "e2e", "--runtime", runtime, "--store", join(storeDir, "store")],
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
