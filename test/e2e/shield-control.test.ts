/**
 * Tiered cache on the JetStream control plane: every box applies a purge when its agent gets it, so an edge can apply
 * one before its shield has. The edge then does not take the shield's answer (it may be the purged copy): shields
 * say how far they applied the control stream (`cdn-control-applied`), and an edge that applied more fills from the
 * origin. Three bare workerd boxes on one config (the shield is one of them: it fills from the origin itself); the
 * shield reaches NATS through a proxy the test cuts silently, so it stays trusted (long lease) but lags.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SITE, TOKEN, until, type ControlCdn } from "../support/control-cdn.ts";
import { startCutOffCdn, type CutOffCdn } from "../support/cut-off-cdn.ts";
import type { TcpProxy } from "../support/tcp-proxy.ts";

const EDGES = ["shield", "eu-lon", "na-sea"];
let proxy: TcpProxy;
let cdn: ControlCdn;
let setup: CutOffCdn;

beforeAll(async () => {
  setup = await startCutOffCdn("shield", {
    edges: EDGES,
    control: "lease_ms = 300000",
    edge: (url) => `shields = [ { name = "shield", url = "${url("shield")}" } ]`,
  });
  ({ proxy, cdn } = setup);
}, 180_000);

afterAll(async () => {
  await setup?.stop();
});

const health = async (edge: string) => (await fetch(cdn.edgeUrl(edge) + "/.well-known/cdn/health")).headers.get("cdn-control");

describe("a purge on the control plane with a shield that lags", () => {
  it("an edge that applied the purge does not refill from the shield's purged copy; once the shield catches up, edges fill from it again", async () => {
    const serve = (path: string, v: string) => cdn.origin.set(path, { headers: { "cache-control": "max-age=600" }, body: `${path} ${v}` });
    for (const e of EDGES) await until(`${e} is current`, async () => ((await health(e)) === "current" ? true : undefined), 30_000);
    serve("/p", "v1");
    expect(await cdn.get("eu-lon", "/p")).toMatchObject({ xcs: "MISS", body: "/p v1" });
    expect(await cdn.get("na-sea", "/p")).toMatchObject({ xcs: "MISS", body: "/p v1" });
    expect(cdn.origin.hitsOf("/p")).toBe(1); // the second edge got the shield's copy

    await proxy.cut("silent");
    serve("/p", "v2");
    const { status, json } = await cdn.purge("eu-lon", { urls: [`http://${SITE}/p`] });
    expect(status).toBe(202);
    expect(json.applied).toEqual(["eu-lon", "na-sea"]);
    expect(json.pending?.map((p) => p.edge)).toEqual(["shield"]);
    // The shield still holds v1 and trusts it (its lease has not run out): asked directly, it says so.
    expect((await cdn.get("shield", "/p")).body).toBe("/p v1");
    for (const e of ["eu-lon", "na-sea"]) expect(await cdn.get(e, "/p")).toMatchObject({ body: "/p v2" });
    const metrics = await (await fetch(cdn.edgeUrl("eu-lon") + "/.well-known/cdn/metrics", { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(metrics).toMatch(/parrot_edge_shield_requests_total\{shield="shield",result="behind"\} [1-9]/);

    await proxy.restore();
    await until("the shield is current again", async () => ((await health("shield")) === "current" ? true : undefined), 60_000);
    // Once the shield's mark has reached the edges' (a box reads its shared log once a second), the second edge to
    // ask for a new object gets the shield's copy: the origin sends it once.
    let n = 0;
    await until("edges fill from the shield again", async () => {
      const path = `/q${n++}`;
      serve(path, "v1");
      await cdn.get("eu-lon", path);
      await cdn.get("na-sea", path);
      return cdn.origin.hitsOf(path) === 1 ? true : undefined;
    }, 30_000);
  }, 150_000);
});
