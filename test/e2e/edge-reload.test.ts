/**
 * Reloading an edge box (SIGHUP): a changed cdn.toml (another origin, another rule) applies within a second with
 * the same processes and the same keep-alive connection; a broken file changes nothing and says why.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, get as httpGet } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";

let a: Served;
let b: Served;
let dir: string;
let config: string;
let edge: Running;
let base: string;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

const toml = (origin: string, ttl: number) => `[edge]
name = "reload"
origin = "${origin}"
access_log = false
[[rules]]
path = "/ruled/**"
ttl = { "200" = ${ttl} }
`;

function get(path: string): Promise<{ body: string; xcs: string | undefined; port: number }> {
  return new Promise((done, fail) => {
    httpGet(`${base}${path}`, { agent }, (res) => {
      const port = res.socket.localPort!;
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => done({ body, xcs: res.headers["x-cache-status"] as string | undefined, port }));
    }).on("error", fail);
  });
}

async function reloaded(after: number): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const lines = edge.output().split("\n").slice(after).filter((l) => /^edge (reload|: reload)/.test(l));
    if (lines.length) return lines[0]!;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no reload line:\n${edge.output()}`);
}

beforeAll(async () => {
  a = await serveFetch(() => new Response("from a\n")); // no freshness: only the rule stores it
  b = await serveFetch(() => new Response("from b\n"));
  dir = mkdtempSync(join(tmpdir(), "parrot-reload-"));
  config = join(dir, "cdn.toml");
  writeFileSync(config, toml(a.url, 600));
  edge = await startNodeScript("scripts/edge.ts", ["--config", config, "--port", "0", "--store", join(dir, "store")], /edge ready: (\S+)/);
  base = edge.match[1]!;
}, 60_000);

afterAll(async () => {
  agent.destroy();
  await edge?.stop();
  await Promise.allSettled([a?.close(), b?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("edge reload (SIGHUP)", () => {
  it("applies a new origin and new rules within a second, same processes, same connection", async () => {
    const pids = /workerd pids: ([\d ]+)/.exec(edge.output())![1];
    const first = await get("/plain");
    expect(first.body).toBe("from a\n");
    expect((await get("/ruled/x")).xcs).toBe("MISS");
    expect((await get("/ruled/x")).xcs).toBe("HIT");
    const lines = edge.output().split("\n").length;
    writeFileSync(config, toml(b.url, 0));
    process.kill(edge.proc.pid!, "SIGHUP");
    expect(await reloaded(lines - 1)).toMatch(/^edge reload: .* applied$/);
    await new Promise((r) => setTimeout(r, 1_200)); // the workers read the file at most once a second
    const after = await get("/plain");
    expect(after.body).toBe("from b\n");
    expect(after.port).toBe(first.port); // the same keep-alive connection
    expect((await get("/ruled/y")).xcs).toBe("MISS");
    expect((await get("/ruled/y")).xcs).toBe("MISS"); // ttl 0 now: nothing stored by the rule
    expect(/workerd pids: ([\d ]+)/.exec(edge.output())![1]).toBe(pids);
    expect(edge.proc.exitCode).toBeNull();
  });

  it("keeps the running configuration when the file is broken, and says why", async () => {
    const lines = edge.output().split("\n").length;
    writeFileSync(config, `[edge]\norigin = "not a url"\n`);
    process.kill(edge.proc.pid!, "SIGHUP");
    for (let i = 0; i < 100 && !/reload refused/.test(edge.output().split("\n").slice(lines - 1).join("\n")); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(edge.output()).toMatch(/edge: reload refused, the running configuration stays: .*edge\.origin/);
    await new Promise((r) => setTimeout(r, 1_200));
    expect((await get("/plain")).body).toBe("from b\n");
  });
});
