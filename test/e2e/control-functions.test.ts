/**
 * Site functions deployed through the control plane (`npm run fn` with `[control]`) over a real nats-server and three
 * edge boxes on bare workerd, each with its cdn.toml (and so its deployed versions) in a folder of its own:
 *   a deploy reaches every box (each answers with the new version within 5 s of its storing); a rollback reaches every
 *   box; `fn list` shows where each version is live; a box down during a deploy installs the version before it
 *   serves, so its first answer is the new version's; a box cut from NATS during a deploy (na-sea reaches it
 *   through a TCP proxy) installs it once it is back; a canary stage: the canary runs a new version first and the
 *   others only once its window passed; a version that throws on the canary is rolled back there by itself and never
 *   reaches another box; `fn status` says what each box runs and why.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until, type ControlCdn } from "../support/control-cdn.ts";
import { startCutOffCdn, type CutOffCdn } from "../support/cut-off-cdn.ts";
import type { TcpProxy } from "../support/tcp-proxy.ts";

const EDGES = ["eu-lon", "na-sea", "as-pek"];
let modules: string;
let cdn: ControlCdn;
let setup: CutOffCdn;
let proxy: TcpProxy;

/** A Worker answering `word` (each version of the function a file of its own). */
function worker(word: string): string {
  const path = join(modules, `${word}.js`);
  writeFileSync(path, `export default { fetch() { return new Response("${word}") } };\n`);
  return path;
}

const allAnswer = (boxes: string[], body: string) =>
  until(`${boxes.join(", ")} answer ${body}`, async () => ((await Promise.all(boxes.map((b) => cdn.get(b, "/fn/x")))).every((a) => a.body === body) ? Date.now() : undefined), 30_000);

/** The ISO time `fn list` gives a version (when it was stored). */
async function storedAt(version: string): Promise<number> {
  const list = await cdn.fn(["list"]);
  const at = list.stdout.match(new RegExp(`^  [ *] ${version}  (\\S+)`, "m"))?.[1];
  if (!at) throw new Error(`fn list names no ${version}:\n${list.stdout}${list.stderr}`);
  return Date.parse(at);
}

beforeAll(async () => {
  modules = mkdtempSync(join(tmpdir(), "parrot-fn-modules-"));
  setup = await startCutOffCdn("na-sea", {
    edges: EDGES,
    control: "catch_up_timeout_ms = 5000",
    ownDirs: true,
    tables: `[[functions]]\nid = "www"\nhosts = ["www.example.org"]\npath = "/fn/"\nmodule = "${worker("module")}"\n`,
  });
  ({ proxy, cdn } = setup);
}, 180_000);

afterAll(async () => {
  await setup?.stop();
  if (modules) rmSync(modules, { recursive: true, force: true });
});

describe("functions through the control plane", () => {
  it("a deploy reaches every box within 5 s of its storing, and fn list shows where it is live", async () => {
    await allAnswer(EDGES, "module");
    const deploy = cdn.fn(["deploy", "--site", "www", worker("one"), "--timeout", "30", "--window", "0"]);
    const answered = await allAnswer(EDGES, "one");
    const result = await deploy;
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^fn: www v1 \(\d+ bytes from .*\/one\.js\) is current in the control plane \(bucket parrot_fleet\)$/m);
    expect(result.stdout).toMatch(/^fn: www v1 live on as-pek, eu-lon, na-sea \(3 of 3 boxes that report\)$/m);
    const took = answered - (await storedAt("v1"));
    expect(took).toBeLessThan(5_000);
    console.log(`v1 stored → every box answers with it: ${took} ms`);
    const list = await cdn.fn(["list"]);
    expect(list.stdout).toMatch(/^www .* current: v1$/m);
    expect(list.stdout).toMatch(/^  \* v1  \S+  \d+ bytes  .*\/one\.js  live on: as-pek, eu-lon, na-sea$/m);
  }, 90_000);

  it("a rollback reaches every box", async () => {
    const deploy = await cdn.fn(["deploy", "--site", "www", worker("two"), "--timeout", "30", "--window", "0"]);
    expect(deploy.code).toBe(0);
    await allAnswer(EDGES, "two");
    const result = await cdn.fn(["rollback", "--site", "www", "--timeout", "30"]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^fn: www v1 is current in the control plane$/m);
    expect(result.stdout).toMatch(/^fn: www v1 live on as-pek, eu-lon, na-sea \(3 of 3 boxes that report\)$/m);
    await allAnswer(EDGES, "one");
    const list = await cdn.fn(["list"]);
    expect(list.stdout).toMatch(/^  \* v1  .* live on: as-pek, eu-lon, na-sea$/m);
    expect(list.stdout).toMatch(/^    v2  .* live on: -$/m);
  }, 90_000);

  it("a box down during a deploy installs the version before it serves: its first answer is the new one", async () => {
    await cdn.stopEdge("as-pek");
    const result = await cdn.fn(["deploy", "--site", "www", worker("three"), "--timeout", "2", "--window", "0", "--canary", "eu-lon"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^fn: www v3 live on eu-lon, na-sea \(2 of 3 boxes that report\)$/m);
    expect(result.stdout).toMatch(/^fn: not yet on as-pek: runs v1, reported \d+ s ago/m);
    await allAnswer(["eu-lon", "na-sea"], "three");
    const box = await cdn.startEdge("as-pek");
    expect(box.output()).toMatch(/^functions: installed www v3 \(control plane\)$/m);
    expect((await cdn.get("as-pek", "/fn/x")).body).toBe("three");
    await until("as-pek reports v3", async () => ((await cdn.fn(["list"])).stdout.match(/^  \* v3  .* live on: as-pek, eu-lon, na-sea$/m) ? true : undefined), 30_000);
  }, 120_000);

  it("a box cut from NATS during a deploy installs the version once it is back", async () => {
    await proxy.cut("close");
    try {
      const result = await cdn.fn(["deploy", "--site", "www", worker("four"), "--timeout", "2", "--window", "0", "--canary", "eu-lon"]);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^fn: www v4 live on as-pek, eu-lon \(2 of 3 boxes that report\)$/m);
      await allAnswer(["eu-lon", "as-pek"], "four");
      expect((await cdn.get("na-sea", "/fn/x")).body).toBe("three");
    } finally {
      await proxy.restore();
    }
    await allAnswer(["na-sea"], "four");
    // Said once its old process takes nothing new: a moment after the new one first answers.
    await until("na-sea says it installed v4", async () => (/^functions: installed www v4 from the control plane$/m.test(cdn.running("na-sea")!.output()) ? true : undefined), 10_000);
  }, 120_000);

  it("a bundle larger than a bucket value is refused at deploy, naming the limit; nothing changes", async () => {
    const path = join(modules, "large.js");
    writeFileSync(path, `const pad = "${"x".repeat(1_100_000)}";\nexport default { fetch() { return new Response(String(pad.length)) } };\n`);
    const result = await cdn.fn(["deploy", "--site", "www", path, "--timeout", "2", "--window", "0"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^fn: the bundle of www is \d+ bytes \(\d+ as a bucket value\): the control plane takes at most 1044480 \(nothing deployed\)$/m);
    expect((await cdn.fn(["list"])).stdout).toMatch(/^www .* current: v4$/m);
    await allAnswer(EDGES, "four");
  }, 90_000);

  it("a canary stage: the canary runs the new version first, the others only once its window passed; fn status says why", async () => {
    await allAnswer(EDGES, "four");
    const deploy = cdn.fn(["deploy", "--site", "www", worker("five"), "--window", "10", "--canary", "eu-lon", "--timeout", "30"]);
    await allAnswer(["eu-lon"], "five");
    // In the canary's window: the others still answer with the version before.
    expect((await Promise.all(["na-sea", "as-pek"].map((b) => cdn.get(b, "/fn/x")))).map((a) => a.body)).toEqual(["four", "four"]);
    const during = await cdn.fn(["status"]);
    expect(during.stdout).toMatch(/^www: v5 canary, canaries eu-lon: /m);
    expect(during.stdout).toMatch(/^ {2}na-sea: runs v4: applied \(not a canary \(eu-lon first\)\)/m);
    const result = await deploy;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^fn: canary: eu-lon \(window 10 s, max_error_rate 0\.01\); the others keep v4 until then$/m);
    expect(result.stdout).toMatch(/^fn: canaries eu-lon healthy through 10 s: www v5 goes to every box$/m);
    expect(result.stdout).toMatch(/^fn: www v5 live on as-pek, eu-lon, na-sea \(3 of 3 boxes that report\)$/m);
    await allAnswer(EDGES, "five");
    const after = await cdn.fn(["status"]);
    expect(after.stdout).toMatch(/^www: v5 all, canaries eu-lon: canaries eu-lon healthy through 10 s/m);
    expect(after.stdout).toMatch(/^ {2}na-sea: runs v5: applied \(canaries eu-lon healthy through 10 s\)/m);
  }, 90_000);

  it("a version that throws on the canary is rolled back there by itself and reaches no other box", async () => {
    const broken = join(modules, "broken.js");
    writeFileSync(broken, 'export default { fetch() { throw new Error("broken") } };\n');
    let done = false;
    const deploy = cdn.fn(["deploy", "--site", "www", broken, "--window", "10", "--canary", "eu-lon", "--timeout", "30"]).finally(() => (done = true));
    // Clients of every box meanwhile (bounded): the canary's answers fail while it runs the broken version; the others never.
    const others: string[] = [];
    let canaryFailed = 0;
    for (let i = 0; i < 400 && !done; i++) {
      const [canary, ...rest] = await Promise.all(EDGES.map((b) => cdn.get(b, "/fn/x")));
      if (canary!.status === 503) canaryFailed++;
      others.push(...rest.map((a) => a.body));
      await new Promise((r) => setTimeout(r, 50));
    }
    const result = await deploy;
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^fn: ROLLED BACK: canary eu-lon rolled back version 6: it threw on \d+ of \d+ requests \(above max_error_rate 0\.01\); every box runs v5/m);
    expect(canaryFailed).toBeGreaterThan(0);
    expect(new Set(others)).toEqual(new Set(["five"]));
    await allAnswer(EDGES, "five");
    const status = await cdn.fn(["status"]);
    expect(status.stdout).toMatch(/^www: v6 rolled-back, canaries eu-lon: canary eu-lon rolled back version 6: it threw on/m);
    expect(status.stdout).toMatch(/^ {2}eu-lon: runs v5: applied \(v6 rolled back: canary eu-lon rolled back version 6: it threw on/m);
    expect(cdn.running("eu-lon")!.output()).toMatch(/^functions: canary: www v6 rolled back to v5: it threw on \d+ of \d+ requests/m);
  }, 90_000);
});
