/**
 * An edge box cut off from NATS (a loopback TCP proxy between its agent and the server, cut by the test): within its
 * lease (lease_ms, here 3 s, plus the agent's one-second check and the edge's read) it stops trusting its cache and
 * revalidates every entry, and its health and /.well-known/cdn/control say so; it is named pending by purges,
 * catches up when the connection returns, and an edge that starts while cut off never answers a HIT from entries it
 * stored before (it revalidates them) until it has caught up.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SITE, TOKEN, until, type ControlCdn } from "../support/control-cdn.ts";
import { startCutOffCdn, type CutOffCdn } from "../support/cut-off-cdn.ts";
import type { TcpProxy } from "../support/tcp-proxy.ts";

const EDGES = ["eu-lon", "na-sea", "as-pek"];
const CUT = "as-pek";
const LEASE_MS = 3000;
let proxy: TcpProxy;
let cdn: ControlCdn;
let setup: CutOffCdn;

beforeAll(async () => {
  setup = await startCutOffCdn(CUT, {
    edges: EDGES,
    control: `catch_up_timeout_ms = 3000\nlease_ms = ${LEASE_MS}`,
  });
  ({ proxy, cdn } = setup);
}, 180_000);

afterAll(async () => {
  await setup?.stop();
});

/** The cut box's control-agent lines (what it connected to, applied, and when): the explanation of a failed wait. */
function agentLog(): string {
  const out = cdn.running(CUT)?.output() ?? "(the box is not running)";
  return out.split("\n").filter((l) => / control: /.test(l)).slice(-40).join("\n");
}

function serve(path: string, v: string) {
  cdn.origin.set(path, { headers: { "cache-control": "max-age=600", etag: `"${v}"` }, body: `${path} ${v}` });
}

async function storeAtAll(path: string) {
  for (const e of EDGES) {
    await cdn.get(e, path);
    expect((await cdn.get(e, path)).xcs).toBe("HIT");
  }
  await new Promise((r) => setTimeout(r, 5));
}

interface ControlState {
  caughtUp: boolean;
  mark: { seq: number } | null;
  lease: { state: string; trusted: boolean; revalidating: boolean; lastContact: string | null };
}

async function controlState(edge: string): Promise<ControlState> {
  const res = await fetch(cdn.edgeUrl(edge) + "/.well-known/cdn/control", { headers: { authorization: `Bearer ${TOKEN}` } });
  return (await res.json()) as ControlState;
}

async function health(edge: string) {
  const res = await fetch(cdn.edgeUrl(edge) + "/.well-known/cdn/health");
  return { status: res.status, text: await res.text(), control: res.headers.get("cdn-control") };
}

describe("an edge cut off from the control plane", () => {
  it("silently partitioned, it stops trusting its cache within its lease, says so, and never serves what was purged meanwhile", async () => {
    serve("/p", "v1");
    await storeAtAll("/p");
    await until("the edge is current", async () => ((await health(CUT)).control === "current" ? true : undefined), 20_000);
    await proxy.cut("silent");
    const cutAt = performance.now();
    const cut = await until(
      "the cut-off edge's health says so",
      async () => {
        const h = await health(CUT);
        return h.control === "cut-off" ? h : undefined;
      },
      LEASE_MS + 10_000,
    );
    console.log(`silent partition: the edge stopped trusting its cache ${((performance.now() - cutAt) / 1000).toFixed(1)} s after the cut (lease ${LEASE_MS / 1000} s)`);
    expect(cut.status).toBe(200);
    expect(cut.text).toMatch(/^ok as-pek \(control: cut off from the control plane since \d{4}-\d\d-\d\dT[\d:.]+Z; revalidating every stored entry\)\n$/);
    expect((await controlState(CUT)).lease).toMatchObject({ state: "cut-off", trusted: false, revalidating: true });
    const metrics = await (await fetch(cdn.edgeUrl(CUT) + "/.well-known/cdn/metrics", { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(metrics).toContain('parrot_edge_control_state{state="cut-off"} 1');
    expect(metrics).toContain("parrot_edge_control_trusted 0");
    // Unchanged at the origin: a conditional request confirms it, every time (a purge could come at any moment).
    expect((await cdn.get(CUT, "/p")).xcs).toBe("REVALIDATED");
    expect((await cdn.get(CUT, "/p")).xcs).toBe("REVALIDATED");

    serve("/p", "v2");
    const { status, json } = await cdn.purge("eu-lon", { urls: [`http://${SITE}/p`] });
    expect(status).toBe(202);
    expect(json.applied).toEqual(["eu-lon", "na-sea"]);
    expect(json.pending?.map((p) => p.edge)).toEqual([CUT]);
    // The cut-off edge cannot know of the purge, but it does not trust its copy: the origin's new version.
    expect(await cdn.get(CUT, "/p")).toMatchObject({ xcs: "EXPIRED", body: "/p v2" });
    const waited = await cdn.cli(["--url", `http://${SITE}/p`, "--wait", "--timeout", "2"]);
    expect(waited.code).toBe(1);
    expect(waited.stderr).toMatch(/not applied within 2 s at: as-pek/);

    const restoredAt = performance.now();
    await proxy.restore();
    // The agent left the dead connection after two unanswered checks and keeps reconnecting; the consumer resumes.
    await until("the cut-off edge is current again", async () => ((await health(CUT)).control === "current" ? true : undefined), 60_000, agentLog);
    console.log(`partitioned edge current again ${((performance.now() - restoredAt) / 1000).toFixed(1)} s after the connection returned`);
    expect((await controlState(CUT)).mark!.seq).toBeGreaterThanOrEqual(json.seq!);
    expect((await cdn.get(CUT, "/p")).body).toBe("/p v2");
    expect((await health(CUT)).text).toBe("ok as-pek\n");
    const all = await cdn.cli(["--url", `http://${SITE}/p`, "--wait", "--timeout", "30"]);
    expect(all.code).toBe(0);
  }, 120_000);

  it("catches up at once when the cut closes its connection and then returns", async () => {
    serve("/q", "v1");
    await storeAtAll("/q");
    await proxy.cut("close");
    serve("/q", "v2");
    expect((await cdn.purge("na-sea", { urls: [`http://${SITE}/q`] })).json.pending?.map((p) => p.edge)).toEqual([CUT]);
    await proxy.restore();
    await until("the cut-off edge catches up", async () => ((await cdn.get(CUT, "/q")).xcs === "MISS" ? true : undefined), 30_000, agentLog);
    expect((await cdn.get(CUT, "/q")).body).toBe("/q v2");
  }, 60_000);

  it("started while cut off, it revalidates everything it stored before (never a HIT) until it has caught up", async () => {
    serve("/g", "v1");
    serve("/h", "v1");
    await storeAtAll("/g");
    await storeAtAll("/h");
    await cdn.stopEdge(CUT);
    await proxy.cut("close");
    serve("/h", "v2");
    const purged = await cdn.purge("eu-lon", { urls: [`http://${SITE}/h`] });
    expect(purged.json.pending?.map((p) => p.edge)).toEqual([CUT]);

    const started = await cdn.startEdge(CUT);
    expect(started.output()).toMatch(/control: NATS JetStream .*; NOT caught up within 3000 ms/);
    expect(await controlState(CUT)).toMatchObject({ caughtUp: false });
    // /g did not change: a conditional request confirms it (REVALIDATED), never a HIT from before the start, and
    // again at the next request: while the box cannot hear the control plane it trusts no stored entry.
    const hits = cdn.origin.hitsOf("/g");
    expect((await cdn.get(CUT, "/g")).xcs).toBe("REVALIDATED");
    expect(cdn.origin.hitsOf("/g")).toBe(hits + 1);
    expect((await cdn.get(CUT, "/g")).xcs).toBe("REVALIDATED");
    // /h was purged while it was away: the conditional request fetches the new version, not the purged one.
    expect(await cdn.get(CUT, "/h")).toMatchObject({ xcs: "EXPIRED", body: "/h v2" });

    await proxy.restore();
    await until("caught up once the control plane is reachable", async () => ((await controlState(CUT)).caughtUp ? true : undefined), 30_000, agentLog);
    expect((await controlState(CUT)).mark!.seq).toBeGreaterThanOrEqual(purged.json.seq!);
  }, 120_000);
});
