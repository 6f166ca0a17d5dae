/** The edge scenarios against `npm run edge` as a real process on a random loopback port, over real HTTP. */
import { afterAll, beforeAll } from "vitest";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { edgeScenarios } from "../support/edge-scenarios.ts";
import { startNodeScript, type Running } from "../support/processes.ts";
import { ScriptedOrigin } from "../support/scripted-origin.ts";

const origin = new ScriptedOrigin();
let served: Served;
let edge: Running;
let edgeUrl: string;

beforeAll(async () => {
  served = await serveFetch(origin.handle);
  edge = await startNodeScript("scripts/edge.ts", ["--origin", served.url, "--port", "0", "--name", "e2e"], /edge ready: (\S+)/);
  edgeUrl = edge.match[1]!;
});

afterAll(async () => {
  await edge?.stop();
  await served?.close();
});

edgeScenarios(() => ({
  edge: (path, init) => fetch(`${edgeUrl}${path}`, init),
  script: async (path, script) => origin.set(path, script),
  hits: async (path) => origin.hitsOf(path),
}));
