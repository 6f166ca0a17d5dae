/**
 * Presence in DNS answers: the DNS node follows the edge boxes' heartbeats (their agents' presence reports, every
 * 500 ms here) beside its probes (every 250 ms, down after 2). A box whose heartbeats stop (its agent's connection to
 * NATS cut by a loopback proxy, the box itself still answering its probes) leaves the director's answers and returns
 * when they resume; with NATS down for everyone (the DNS node cannot hear anyone) the probes alone decide: every box
 * stays, and a box that stops answering its probes still leaves. The heartbeats carry the box's drain (and, with
 * [anycast], its announcement): the DNS node's status shows what the last one said.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TOKEN, until, type ControlCdn } from "../support/control-cdn.ts";
import type { TestNats } from "../support/nats.ts";
import { startCutOffCdn, type CutOffCdn } from "../support/cut-off-cdn.ts";
import type { TcpProxy } from "../support/tcp-proxy.ts";

const EDGES = ["eu-lon", "na-sea", "as-pek"];
const CUT = "as-pek";
const ADDRESS = { "eu-lon": "127.0.0.2", "na-sea": "127.0.0.3", "as-pek": "127.0.0.4" } as const;
let nats: TestNats;
let proxy: TcpProxy;
let cdn: ControlCdn;
let setup: CutOffCdn;

beforeAll(async () => {
  setup = await startCutOffCdn(CUT, {
    edges: EDGES,
    control: "catch_up_timeout_ms = 3000\npresence_interval_ms = 500",
    dns: true,
  });
  ({ nats, proxy, cdn } = setup);
}, 180_000);

afterAll(async () => {
  await setup?.stop();
});

const director = async () => (await cdn.dns!.dig("director.geo.example.org", "A")).sort();
const answersAre = (what: string, want: string[]) =>
  until(what, async () => {
    const a = await director();
    return JSON.stringify(a) === JSON.stringify([...want].sort()) ? a : undefined;
  }, 30_000);

describe("heartbeats in DNS answers", () => {
  it("a box whose heartbeats stop leaves the answers while its probes still pass, and returns when they resume", async () => {
    await answersAre("every edge in the answers", Object.values(ADDRESS));
    const cutAt = Date.now();
    await proxy.cut("close");
    // Its edge still answers its health probes: only the heartbeats say it is gone.
    const health = await fetch(cdn.edgeUrl(CUT) + "/.well-known/cdn/health");
    await health.text();
    expect(health.status).toBe(200);
    await answersAre(`${CUT} out of the answers`, [ADDRESS["eu-lon"], ADDRESS["na-sea"]]);
    console.log(`heartbeats cut → ${CUT} out of the director's answers: ${Date.now() - cutAt} ms (heartbeats every 500 ms, silent after 1250 ms; probes every 250 ms, down after 2)`);
    await proxy.restore();
    await answersAre(`${CUT} back in the answers`, Object.values(ADDRESS));
  }, 90_000);

  it("a box's heartbeats carry its drain, and the DNS node's status shows what they said", async () => {
    const heartbeatOf = async (edge: string) => String((await cdn.dns!.statusJson()).edges.find((e) => e.name === edge)?.heartbeat);
    await until("eu-lon's heartbeat says ok", async () => ((await heartbeatOf("eu-lon")).startsWith("ok, ") ? true : undefined), 10_000);
    const drain = (draining: boolean) =>
      fetch(cdn.edgeUrl("eu-lon") + "/.well-known/cdn/drain", { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ draining }) }).then((r) => r.text());
    await drain(true);
    try {
      const said = await until("eu-lon's heartbeat says draining", async () => {
        const h = await heartbeatOf("eu-lon");
        return h.startsWith("draining, ") ? h : undefined;
      }, 10_000);
      expect(said).toMatch(/^draining, \d+\.\d s ago$/);
      expect(await heartbeatOf("na-sea")).toMatch(/^ok, /);
    } finally {
      await drain(false);
    }
    await until("eu-lon's heartbeat says ok again", async () => ((await heartbeatOf("eu-lon")).startsWith("ok, ") ? true : undefined), 10_000);
    await answersAre("every edge back after the drain", Object.values(ADDRESS));
  }, 60_000);

  it("with NATS down every box that answers its probes stays; one that does not still leaves", async () => {
    await nats.stop();
    try {
      // Past several silent periods: a node that hears nobody judges by probes alone.
      await until("the DNS node's probes ran well past a silent period", async () => {
        const res = await fetch(cdn.edgeUrl("eu-lon") + "/.well-known/cdn/health");
        await res.text();
        return res.headers.get("cdn-control") === "cut-off" ? true : undefined;
      }, 30_000);
      expect(await director()).toEqual(Object.values(ADDRESS).sort());
      await cdn.stopEdge("na-sea");
      await answersAre("na-sea out of the answers (probes)", [ADDRESS["eu-lon"], ADDRESS["as-pek"]]);
    } finally {
      await nats.start();
    }
    await cdn.startEdge("na-sea");
    await answersAre("every edge back", Object.values(ADDRESS));
  }, 120_000);
});
