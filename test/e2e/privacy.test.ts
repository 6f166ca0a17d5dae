/**
 * What a box writes down about its clients ([privacy]): a bare-workerd edge with two processes, hashed addresses.
 * Both processes hash with the key the box host hands them through its environment (workerd's `fromEnvironment`
 * binding), so a client has one hash in the whole box's log for the day, and the address itself appears nowhere.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ROOT, startNodeScript, type Running } from "../../src/node/children.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { ClientAddresses, DailyKey } from "../../src/privacy/client-addresses.ts";
import { freePort } from "../support/ports.ts";
import { ScriptedOrigin } from "../support/scripted-origin.ts";

const origin = new ScriptedOrigin();
let served: Served;
let edge: Running;
let port: number;
// The key a box host would make at start; given to it here so the test can compute the hashes it must write.
const key = DailyKey.fresh().serialize();

beforeAll(async () => {
  served = await serveFetch(origin.handle);
  const dir = mkdtempSync(join(tmpdir(), "parrot-privacy-"));
  port = await freePort();
  writeFileSync(join(dir, "cdn.toml"), `[edge]\norigin = "${served.url}"\nname = "p"\nprocesses = 2\n\n[privacy]\nclient_addresses = "hash"\n`);
  edge = await startNodeScript(
    "scripts/edge.ts",
    ["--config", join(dir, "cdn.toml"), "--port", String(port), "--host", "127.0.0.1", "--store", join(dir, "store")],
    /edge ready: (\S+)/,
    60_000,
    undefined,
    { ...process.env, PARROT_PRIVACY_KEY: key },
  );
}, 90_000);

afterAll(async () => {
  await edge?.stop();
  await served?.close();
});

it("writes each client as the box's hash of the day, the same in every process, and never its address", async () => {
  origin.set("/p", { headers: { "cache-control": "max-age=60" }, body: "p" });
  // New connections from two loopback addresses (curl opens one per run): the kernel spreads them over both processes.
  const sources = ["127.0.0.7", "127.0.0.8"];
  const n = 12;
  for (let i = 0; i < n; i++) {
    // Not execFileSync: the origin answers from this process's event loop.
    await promisify(execFile)("curl", ["-sS", "-o", "/dev/null", "--interface", sources[i % 2]!, `http://127.0.0.1:${port}/p?i=${i}`], { cwd: ROOT, timeout: 10_000 });
  }
  const lines = () =>
    edge
      .output()
      .split("\n")
      .filter((l) => l.includes('"path":"/p?i='))
      .map((l) => JSON.parse(l.slice(l.indexOf("{"))) as { client: string; path: string });
  for (let i = 0; i < 100 && lines().length < n; i++) await new Promise((r) => setTimeout(r, 50)); // batched every 250 ms
  const logged = lines();
  expect(logged).toHaveLength(n);
  const expected = new ClientAddresses({ client_addresses: "hash", ipv4_prefix: 24, ipv6_prefix: 48 }, DailyKey.parse(key)!);
  for (const line of logged) {
    const i = Number(line.path.slice("/p?i=".length));
    expect(line.client).toBe(expected.text(sources[i % 2]!));
  }
  expect(new Set(logged.map((l) => l.client)).size).toBe(2);
  expect(edge.output()).not.toMatch(/127\.0\.0\.[78]/);
});
