/**
 * Edge functions through `npm run edge` (scripts/edge.ts, two edge processes) and its SIGHUP: the box loads a function's module from its
 * file at start, and `kill -HUP` makes it bundle the changed file and restart that function's process only; a
 * module that no longer bundles leaves the running version serving. A deploy and a rollback (npm run fn) under
 * continuous requests fail none of them, each answer is the old or the new version's and, once the box said it
 * switched, only the new one's; functions added to and removed from cdn.toml apply on reload.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
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

function get(host: string, path: string, agent: Agent | false = false): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = httpRequest({ host: base.hostname, port: base.port, path, headers: { host }, agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => done({ status: res.statusCode!, body }));
    });
    req.on("error", fail);
    req.end();
  });
}
const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
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
    // Said once the old process takes nothing new (it may answer a moment before).
    const said = await waitFor(async () => (/edge reload: function a now runs \S*\/a\.js\n/.test(edge.output()) ? true : undefined), 20_000);
    expect(said?.value).toBe(true);
    expect(edge.output()).not.toContain("function b now runs");
    // b's process was left alone; a's old one ends once it has answered what it had.
    expect(() => process.kill(b0, 0)).not.toThrow();
    const gone = await waitFor(async () => (isRunning(a0) ? undefined : true), 20_000);
    expect(gone?.value).toBe(true);
  }, 60_000);

  it("a module that no longer bundles is refused on reload: the running version keeps serving", async () => {
    writeFileSync(join(dir, "a.js"), "export default { fetch( {\n");
    process.kill(edge.proc.pid!, "SIGHUP");
    const refused = await waitFor(async () => (/function a not reloaded/.test(edge.output()) ? true : undefined), 30_000);
    expect(refused?.value).toBe(true);
    expect((await get("a.test", "/")).body).toBe("second\n");
  }, 60_000);
});

describe("swaps without dropping requests", () => {
  const fn = (...args: string[]) =>
    spawnSync(process.execPath, ["scripts/fn.ts", ...args, "--config", join(dir, "cdn.toml"), "--pid-file", join(dir, "store", ".run", "edge.pid")], { encoding: "utf8" });
  /**
   * Asks a.test from 8 clients on kept-alive connections, without pause, while `change` runs; then until `after` ms
   * past the moment the box's log says `switched`. Each answer with when it was asked.
   */
  async function underLoad(change: () => void, switched: RegExp, after = 1_500) {
    const answers: { askedAt: number; status: number; body: string }[] = [];
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    let until = Infinity;
    let switchedAt = Infinity;
    const client = async () => {
      while (Date.now() < until) {
        const askedAt = Date.now();
        const res = await get("a.test", "/", agent).catch((err: Error) => ({ status: 0, body: err.message }));
        answers.push({ askedAt, ...res });
      }
    };
    const clients = Array.from({ length: 8 }, client);
    await new Promise((r) => setTimeout(r, 300)); // answers from before the change
    const from = edge.output().length;
    change();
    const seen = await waitFor(async () => (switched.test(edge.output().slice(from)) ? Date.now() : undefined), 60_000);
    switchedAt = seen?.value ?? Infinity;
    until = Date.now() + after;
    await Promise.all(clients);
    agent.destroy();
    return { answers, switchedAt };
  }

  it("a deploy and a rollback under continuous requests: none fails, each is the old or the new version's, after the switch only the new one's", async () => {
    writeFileSync(join(dir, "a-new.js"), answerOf("deployed"));
    const deployed = await underLoad(() => {
      const out = fn("deploy", "--site", "a", join(dir, "a-new.js"));
      expect(out.status, out.stderr).toBe(0);
    }, /function a now runs v1\n/);
    expect(deployed.switchedAt).toBeLessThan(Infinity);
    expect(deployed.answers.filter((a) => a.status !== 200 || !["second\n", "deployed\n"].includes(a.body))).toEqual([]);
    expect(deployed.answers.filter((a) => a.askedAt > deployed.switchedAt && a.body !== "deployed\n")).toEqual([]);
    expect(deployed.answers.some((a) => a.body === "second\n")).toBe(true);
    expect(deployed.answers.filter((a) => a.askedAt > deployed.switchedAt).length).toBeGreaterThan(10);

    writeFileSync(join(dir, "a-next.js"), answerOf("next"));
    const next = fn("deploy", "--site", "a", join(dir, "a-next.js"));
    expect(next.status).toBe(0);
    const nextServed = await waitFor(async () => ((await get("a.test", "/")).body === "next\n" ? true : undefined), 30_000);
    expect(nextServed?.value).toBe(true);
    const back = await underLoad(() => {
      const out = fn("rollback", "--site", "a");
      expect(out.stdout).toContain("a v1 is current");
    }, /function a now runs v1\n/);
    expect(back.answers.filter((a) => a.status !== 200 || !["next\n", "deployed\n"].includes(a.body))).toEqual([]);
    expect(back.answers.filter((a) => a.askedAt > back.switchedAt && a.body !== "deployed\n")).toEqual([]);
  }, 120_000);

  it("a function added to cdn.toml runs after a reload, one removed stops: no restart of the box", async () => {
    const config = join(dir, "cdn.toml");
    const before = readFileSync(config, "utf8");
    writeFileSync(join(dir, "c.js"), answerOf("c"));
    writeFileSync(config, `${before}[[functions]]\nid = "c"\nhosts = ["c.test"]\nmodule = "c.js"\n`);
    process.kill(edge.proc.pid!, "SIGHUP");
    const added = await waitFor(async () => ((await get("c.test", "/")).body === "c\n" ? true : undefined), 30_000);
    expect(added?.value).toBe(true);
    expect(edge.output()).toMatch(/function c added: runs \S*\/c\.js\n/);
    writeFileSync(config, before);
    process.kill(edge.proc.pid!, "SIGHUP");
    const removed = await waitFor(async () => ((await get("c.test", "/")).body === "origin\n" ? true : undefined), 30_000);
    expect(removed?.value).toBe(true);
    const said = await waitFor(async () => (/function c removed: its process stops\n/.test(edge.output()) ? true : undefined), 20_000);
    expect(said?.value).toBe(true);
    // Its process drained and gone: its generation's folder removed.
    const cDir = join(dir, "store", ".run", "functions", "c");
    const gone = await waitFor(async () => (existsSync(cDir) && readdirSync(cDir).length ? undefined : true), 30_000);
    expect(gone?.value).toBe(true);
    expect((await get("a.test", "/")).status).toBe(200);
  }, 90_000);
});
