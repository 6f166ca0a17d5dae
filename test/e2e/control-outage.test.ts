/**
 * The control plane down: nats-server stopped under three running edge boxes. Edges keep serving from their caches,
 * purge calls fail loudly (edge endpoint, PURGE method, CLI), a box that starts meanwhile still serves; when the
 * server returns (same store), every consumer resumes where it left off and purges work again.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NATS_USER, SITE, startControlCdn, TOKEN, until, type ControlCdn } from "../support/control-cdn.ts";
import { startTestNats, type TestNats } from "../support/nats.ts";

const EDGES = ["eu-lon", "na-sea", "as-pek"];
let natsDir: string;
let nats: TestNats;
let cdn: ControlCdn;

beforeAll(async () => {
  natsDir = mkdtempSync(join(tmpdir(), "parrot-nats-"));
  nats = await startTestNats(natsDir, NATS_USER);
  cdn = await startControlCdn({ edges: EDGES, servers: [nats.url], control: "catch_up_timeout_ms = 3000" });
}, 180_000);

afterAll(async () => {
  await cdn?.stop();
  await nats?.stop();
  rmSync(natsDir, { recursive: true, force: true });
});

function serve(path: string, v: string) {
  cdn.origin.set(path, { headers: { "cache-control": "max-age=600", etag: `"${v}"` }, body: `${path} ${v}` });
}

describe("NATS down", () => {
  it("edges serve from cache, purges fail with a clear error, and everything resumes when NATS returns", async () => {
    serve("/o", "v1");
    for (const e of EDGES) await cdn.get(e, "/o");
    await new Promise((r) => setTimeout(r, 5));
    const before = await cdn.purge("eu-lon", { tags: ["nothing-yet"] });
    expect(before.status).toBe(200);

    await nats.stop();
    for (const e of EDGES) expect(await cdn.get(e, "/o")).toMatchObject({ xcs: "HIT", body: "/o v1" });

    const viaEdge = await until(
      "the agent notices",
      async () => {
        const r = await cdn.purge("na-sea", { urls: [`http://${SITE}/o`] });
        return r.status === 503 ? r : undefined;
      },
      10_000,
    );
    expect(viaEdge.json).toMatchObject({ stored: false, error: expect.stringMatching(/^control plane unreachable \(nats:\/\/127\.0\.0\.1:\d+: disconnected since .*\): the purge was not stored$/) });
    const method = await fetch(cdn.url("as-pek", "/o"), { method: "PURGE", headers: { authorization: `Bearer ${TOKEN}` } });
    expect(method.status).toBe(503);
    const cli = await cdn.cli(["--url", `http://${SITE}/o`]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/^purge: NOT stored: control plane unreachable \(nats:\/\/127\.0\.0\.1:\d+\): /);
    // Nothing was purged anywhere: no edge reports success it does not have.
    for (const e of EDGES) expect((await cdn.get(e, "/o")).xcs).toBe("HIT");

    // A box that starts during the outage serves, revalidating what it stored before.
    await cdn.stopEdge("as-pek");
    const started = await cdn.startEdge("as-pek");
    expect(started.output()).toMatch(/NOT caught up within 3000 ms/);
    expect((await cdn.get("as-pek", "/o")).xcs).toBe("REVALIDATED");

    await nats.start();
    serve("/o", "v2");
    const after = await until(
      "purges work again",
      async () => {
        const r = await cdn.purge("eu-lon", { urls: [`http://${SITE}/o`] });
        return r.status === 200 ? r : undefined;
      },
      30_000,
    );
    // The stream kept its messages: sequence numbers go on from before the outage.
    expect(after.json.seq).toBeGreaterThan(before.json.seq!);
    expect(after.json.applied).toEqual([...EDGES].sort());
    for (const e of EDGES) expect(await cdn.get(e, "/o")).toMatchObject({ xcs: "MISS", body: "/o v2" });
    const state = await (await fetch(cdn.edgeUrl("as-pek") + "/.well-known/cdn/control", { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    expect(state).toMatchObject({ caughtUp: true });
  }, 180_000);
});
