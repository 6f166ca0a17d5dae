/**
 * The control plane down: nats-server stopped under three running edge boxes. Edges keep serving, revalidating what
 * they stored once their lease runs out (they cannot know of purges meanwhile), purge calls fail loudly (edge endpoint, PURGE method, CLI), a box that starts meanwhile still serves; when the
 * server returns (same store), every consumer resumes where it left off and purges work again.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SITE, TOKEN, until, type ControlCdn } from "../support/control-cdn.ts";
import { startNatsCdn, type NatsCdn } from "../support/cut-off-cdn.ts";
import type { TestNats } from "../support/nats.ts";

const EDGES = ["eu-lon", "na-sea", "as-pek"];
let setup: NatsCdn;
let nats: TestNats;
let cdn: ControlCdn;

beforeAll(async () => {
  setup = await startNatsCdn({ edges: EDGES, control: "catch_up_timeout_ms = 3000\nlease_ms = 3000" });
  ({ nats, cdn } = setup);
}, 180_000);

afterAll(async () => {
  await setup?.stop();
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
    // Past its lease (3 s here) an edge that cannot hear the control plane trusts no stored entry: each request is
    // a conditional one to the origin (304: the stored copy is served).
    for (const e of EDGES) {
      await until(`${e} says it is cut off`, async () => {
        const res = await fetch(cdn.edgeUrl(e) + "/.well-known/cdn/health");
        await res.text();
        return res.headers.get("cdn-control") === "cut-off" ? true : undefined;
      }, 15_000);
      expect(await cdn.get(e, "/o")).toMatchObject({ xcs: "REVALIDATED", body: "/o v1" });
    }

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
    // Nothing was purged anywhere (a purged entry would be gone: MISS): no edge reports success it does not have.
    for (const e of EDGES) expect((await cdn.get(e, "/o")).xcs).toBe("REVALIDATED");

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
