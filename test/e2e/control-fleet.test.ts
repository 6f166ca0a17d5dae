/**
 * The fleet's configuration rollout (`npm run fleet`) over a real nats-server and three edge boxes on bare workerd,
 * each started with `[control] fleet = true` and its own file naming the first origin ("one"):
 *   a push (the origin "two") reaches every box within 5 s with no failed request meanwhile; a push whose origin
 *   does not answer is rolled back by its canary and never reaches the other boxes; a box down during a push applies
 *   the version when it starts, before it serves; with NATS down the boxes keep serving, and one that starts then
 *   serves the version it last applied (not its own file); `fleet rollback` sends every box to the version before.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/config.ts";
import { FleetKv } from "../../src/control/fleet-kv.ts";
import { connectOnce } from "../../src/control/nats.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { until, type ControlCdn } from "../support/control-cdn.ts";
import { startNatsCdn, type NatsCdn } from "../support/cut-off-cdn.ts";
import type { TestNats } from "../support/nats.ts";
import { freePort } from "../support/ports.ts";
import { ScriptedOrigin } from "../support/scripted-origin.ts";

const EDGES = ["eu-lon", "na-sea", "as-pek"];
let setup: NatsCdn;
let nats: TestNats;
let cdn: ControlCdn;
const origins: { origin: ScriptedOrigin; served: Served }[] = [];

/** Every answer of /who comes from the origin (no-store): its body names the origin the box's config points at. */
function who(origin: ScriptedOrigin, name: string) {
  origin.set("/who", { headers: { "cache-control": "no-store" }, body: name });
}

/** The common config with another origin: what the operator pushes. */
function pushed(name: string, origin: string): string {
  const path = join(cdn.dir, `${name}.toml`);
  const text = readFileSync(cdn.config, "utf8").replace(/^origin = ".*"$/m, `origin = "${origin}"`);
  writeFileSync(path, text);
  return path;
}

/** GETs /who at every box in a loop until stopped; every answer that is not 200 is kept. */
function load(boxes: string[]) {
  const failures: string[] = [];
  const bodies = new Map<string, Set<string>>(boxes.map((b) => [b, new Set()]));
  let stop = false;
  const loops = boxes.map(async (box) => {
    for (let i = 0; i < 5_000 && !stop; i++) {
      try {
        const a = await cdn.get(box, "/who");
        bodies.get(box)!.add(a.body);
        if (a.status !== 200) failures.push(`${box}: ${a.status} ${a.body.slice(0, 80)}`);
      } catch (err) {
        failures.push(`${box}: ${(err as Error).message}`);
      }
    }
  });
  return {
    failures,
    bodies,
    async stop() {
      stop = true;
      await Promise.all(loops);
    },
  };
}

const allAnswer = (boxes: string[], body: string) =>
  until(`${boxes.join(", ")} answer ${body}`, async () => ((await Promise.all(boxes.map((b) => cdn.get(b, "/who")))).every((a) => a.body === body) ? true : undefined), 30_000);

beforeAll(async () => {
  setup = await startNatsCdn({ edges: EDGES, control: "catch_up_timeout_ms = 5000\nfleet = true" });
  ({ nats, cdn } = setup);
  who(cdn.origin, "one");
  for (const name of ["two", "three"]) {
    const origin = new ScriptedOrigin();
    who(origin, name);
    origins.push({ origin, served: await serveFetch(origin.handle) });
  }
}, 180_000);

afterAll(async () => {
  await setup?.stop();
  await Promise.allSettled(origins.map((o) => o.served.close()));
});

describe("fleet rollout", () => {
  it("a push applies on every box within 5 s, canary first, with no failed request", async () => {
    await allAnswer(EDGES, "one");
    const traffic = load(EDGES);
    const started = Date.now();
    const push = cdn.fleet(["push", pushed("v1", origins[0]!.served.url), "--canary", "na-sea", "--window", "1"]);
    await allAnswer(EDGES, "two");
    const answeredMs = Date.now() - started;
    const result = await push;
    await traffic.stop();
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^version 1 stored/m);
    expect(result.stdout).toMatch(/^canary: na-sea /m);
    for (const e of EDGES) expect(result.stdout).toMatch(new RegExp(`^ok +${e}: applied \\(runs version 1`, "m"));
    expect(traffic.failures).toEqual([]);
    // From the version stored to the last box answering with it (the boxes' own clocks: one machine here).
    expect(result.stdout).toMatch(/^version 1 runs on 3 of 3 boxes/m);
    const took = Number(result.stdout.match(/^version 1 runs on 3 of 3 boxes; the last began ([\d.]+) s after it was stored/m)?.[1]);
    expect(took).toBeLessThan(5);
    console.log(`version stored → the last box runs it: ${took} s; the command started → every box answers from the new origin: ${answeredMs} ms`);
    const status = await cdn.fleet(["status"]);
    expect(status.stdout).toMatch(/^rollout: version 1, stage all/m);
  }, 90_000);

  it("a push whose origin does not answer is rolled back by the canary and never reaches the other boxes", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const traffic = load(["eu-lon", "as-pek"]);
    const result = await cdn.fleet(["push", pushed("v2", dead), "--canary", "na-sea", "--window", "2", "--timeout", "30"]);
    await traffic.stop();
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/ROLLED BACK: canary na-sea rolled back version 2: health regressed: origin http:\/\/127\.0\.0\.1:\d+ does not answer \(ECONNREFUSED\)/);
    // The others never left version 1; the canary is back on it.
    expect(traffic.failures).toEqual([]);
    expect(new Set([...traffic.bodies.get("eu-lon")!, ...traffic.bodies.get("as-pek")!])).toEqual(new Set(["two"]));
    await allAnswer(EDGES, "two");
    const status = await cdn.fleet(["status"]);
    expect(status.stdout).toMatch(/^rollout: version 2, stage rolled-back/m);
    expect(status.stdout).toMatch(/^fleet version: 1 \(version 2 rolled back\)/m);
    for (const e of ["eu-lon", "as-pek"]) expect(status.stdout).toMatch(new RegExp(`^ok +${e}: applied \\(runs version 1, asked for 1\\)`, "m"));
    expect(status.stdout).toMatch(/^ok +na-sea: applied \(runs version 1, asked for 1\): version 2 rolled back: canary na-sea rolled back/m);
  }, 90_000);

  it("a box down during a push applies the version when it starts, before it serves", async () => {
    await cdn.stopEdge("as-pek");
    const result = await cdn.fleet(["push", pushed("v3", origins[1]!.served.url), "--canary", "eu-lon", "--window", "1"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^down +as-pek: .*not running \(applies version 3 when it starts\)/m);
    await allAnswer(["eu-lon", "na-sea"], "three");
    // Its own file still names origin "one": the first answer after "edge ready" comes from version 3.
    const box = await cdn.startEdge("as-pek");
    expect(box.output()).toMatch(/fleet: fleet version 3; following/);
    expect((await cdn.get("as-pek", "/who")).body).toBe("three");
    await until("as-pek reports version 3", async () => ((await cdn.fleet(["status"])).stdout.match(/^ok +as-pek: applied \(runs version 3/m) ? true : undefined), 30_000);
  }, 120_000);

  it("with NATS down the boxes keep serving, and a box that starts serves the version it last applied", async () => {
    await nats.stop();
    try {
      for (const e of EDGES) expect(await cdn.get(e, "/who")).toMatchObject({ status: 200, body: "three" });
      await cdn.stopEdge("na-sea");
      const box = await cdn.startEdge("na-sea");
      expect(box.output()).toMatch(/fleet: fleet version 3, as last applied here \(the fleet's bucket unreachable/);
      expect(await cdn.get("na-sea", "/who")).toMatchObject({ status: 200, body: "three" });
      const status = await cdn.fleet(["status"]);
      expect(status.code).toBe(1);
      expect(status.stderr).toMatch(/control plane unreachable/);
    } finally {
      await nats.start();
    }
  }, 120_000);

  it("fleet rollback sends every box back to the version before", async () => {
    await until("every box reachable on NATS again", async () => ((await cdn.fleet(["status"])).code === 0 ? true : undefined), 30_000);
    const result = await cdn.fleet(["rollback", "--timeout", "30"]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^rolled back: every box goes to version 1$/m);
    await allAnswer(EDGES, "two");
    const status = await cdn.fleet(["status"]);
    expect(status.stdout).toMatch(/^rollout: version 3, stage rolled-back, .*: rolled back by /m);
    for (const e of EDGES) expect(status.stdout).toMatch(new RegExp(`^ok +${e}: applied \\(runs version 1, asked for 1\\): version 3 rolled back`, "m"));
    expect((await cdn.fleet(["rollback"])).stderr).toMatch(/nothing to rollback: version 3 is already rolled back/);
  }, 90_000);

  it("a push after one that died having stored its text (no record names it) takes the next version", async () => {
    const config = parseConfig(readFileSync(cdn.config, "utf8"));
    const nc = await connectOnce(config.control!, "test: a push that died");
    try {
      const kv = await FleetKv.open(nc, config.control!);
      await kv.put("config.4", JSON.stringify({ v: 1, version: 4, text: readFileSync(cdn.config, "utf8"), digest: "0", at: Date.now(), by: "test" }), 0);
    } finally {
      await nc.close();
    }
    const result = await cdn.fleet(["push", pushed("v5", cdn.served.url), "--canary", "eu-lon", "--window", "0"]);
    expect(result.stderr).toBe("");
    expect(result.stdout).toMatch(/^version 5 stored .*; before it: version 1$/m);
    await allAnswer(EDGES, "one");
  }, 90_000);
});
