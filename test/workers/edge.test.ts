/** The edge scenarios inside Miniflare: the worker under test answers through `exports.default`. */
import { SELF } from "cloudflare:test";
import { inject } from "vitest";
import { edgeScenarios } from "../support/edge-scenarios.ts";

const originUrl = inject("originUrl");

edgeScenarios(() => ({
  edge: (path, init) => SELF.fetch(`http://www.example.org${path}`, init),
  script: async (path, script) => {
    const res = await fetch(`${originUrl}/__script${path}`, { method: "PUT", body: JSON.stringify(script) });
    await res.arrayBuffer();
  },
  hits: async (path) => ((await (await fetch(`${originUrl}/__hits${path}`)).json()) as { hits: number }).hits,
}));
