/** Starts the scripted origin for the workers project and hands its address to the worker's config. */
import type { TestProject } from "vitest/node";
import { serveFetch } from "../../src/node/serve-fetch.ts";
import { ScriptedOrigin } from "./scripted-origin.ts";

export default async function setup(project: TestProject) {
  const origin = new ScriptedOrigin();
  const served = await serveFetch(origin.handle);
  project.provide("originUrl", served.url);
  project.provide(
    "workersEdgeConfig",
    `[edge]\nname = "mf"\norigin = "${served.url}"\n\n[[rules]]\npath = "/**"\nbypass = { args = ["nocache"] }\n`,
  );
  return () => served.close();
}

declare module "vitest" {
  export interface ProvidedContext {
    originUrl: string;
    workersEdgeConfig: string;
  }
}
