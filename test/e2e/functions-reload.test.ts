/**
 * Edge functions through `npm run edge` (scripts/edge.ts, two edge processes) and its SIGHUP: the box loads a function's module from its
 * file at start, and `kill -HUP` makes it bundle the changed file and restart that function's process only; a
 * module that no longer bundles leaves the running version serving.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { waitFor } from "../support/anycast.ts";

let served: Served;
let edge: Running;
let dir: string;
let base: URL;

function get(host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = httpRequest({ host: base.hostname, port: base.port, path, headers: { host }, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => done({ status: res.statusCode!, body }));
    });
    req.on("error", fail);
    req.end();
  });
}
const answerOf = (word: string) => `export default { fetch() { return new Response("${word}\\n") } };\n`;

beforeAll(async () => {
  served = await serveFetch(() => new Response("origin\n", { headers: { "cache-control": "max-age=60" } }));
  dir = mkdtempSync(join(tmpdir(), "parrot-functions-reload-"));
  writeFileSync(join(dir, "a.js"), answerOf("first"));
  writeFileSync(join(dir, "b.js"), "export default { fetch(request) { return fetch(request) } };\n"); // through the cache
  const config = join(dir, "cdn.toml");
  writeFileSync(
    config,
    `[edge]\nname = "reload"\norigin = "${served.url}"\naccess_log = false\nprocesses = 2\n` +
      `[[functions]]\nid = "a"\nhosts = ["a.test"]\nmodule = "a.js"\n` +
      `[[functions]]\nid = "b"\nhosts = ["b.test"]\nmodule = "b.js"\n`,
  );
  edge = await startNodeScript("scripts/edge.ts", ["--config", config, "--port", "0", "--store", join(dir, "store")], /edge ready: (\S+)/, 60_000);
  base = new URL(edge.match[1]!);
}, 90_000);

afterAll(async () => {
  await edge?.stop();
  await served?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("edge functions and the box's SIGHUP", () => {
  it("loads each function from its file at start", async () => {
    expect((await get("a.test", "/")).body).toBe("first\n");
    // Two edge processes share the functions' socket back in: every fetch() of b is served, whichever took it.
    for (let i = 0; i < 6; i++) expect((await get("b.test", `/b/${i}`)).body).toBe("origin\n");
    expect((await get("plain.test", "/")).body).toBe("origin\n");
  });

  it("kill -HUP bundles the changed module and restarts that function only", async () => {
    const pidOf = (id: string) => Number(new RegExp(`^function ${id}: workerd pid (\\d+)$`, "m").exec(edge.output())?.[1]);
    const [a0, b0] = [pidOf("a"), pidOf("b")];
    expect(a0).toBeGreaterThan(0);
    writeFileSync(join(dir, "a.js"), answerOf("second"));
    process.kill(edge.proc.pid!, "SIGHUP");
    const changed = await waitFor(async () => ((await get("a.test", "/")).body === "second\n" ? true : undefined), 30_000);
    expect(changed?.value).toBe(true);
    expect(edge.output()).toMatch(/edge reload: function a now runs \S*\/a\.js\n/);
    expect(edge.output()).not.toContain("function b now runs");
    // b's process was left alone.
    expect(() => process.kill(b0, 0)).not.toThrow();
    expect(() => process.kill(a0, 0)).toThrow();
  }, 60_000);

  it("a module that no longer bundles is refused on reload: the running version keeps serving", async () => {
    writeFileSync(join(dir, "a.js"), "export default { fetch( {\n");
    process.kill(edge.proc.pid!, "SIGHUP");
    const refused = await waitFor(async () => (/function a not reloaded/.test(edge.output()) ? true : undefined), 30_000);
    expect(refused?.value).toBe(true);
    expect((await get("a.test", "/")).body).toBe("second\n");
  }, 60_000);
});
