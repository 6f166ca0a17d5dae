/**
 * Purges and drains on the control plane with real processes: a JetStream nats-server (user/password), three edge
 * boxes (bare workerd + their control agents) and the DNS node on loopback; curl, dig and the CLI as clients.
 * Every request names Host www.example.org, so all edges share its cache keys.
 */
import { execFile } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/config.ts";
import { readFileSync } from "node:fs";
import { ControlClient } from "../../src/control/client.ts";
import { connectOnce } from "../../src/control/nats.ts";
import { SITE, TOKEN, until, type ControlCdn } from "../support/control-cdn.ts";
import { startNatsCdn, type NatsCdn } from "../support/cut-off-cdn.ts";
import type { TestNats } from "../support/nats.ts";

const EDGES = ["eu-lon", "na-sea", "as-pek"];
let setup: NatsCdn;
let nats: TestNats;
let cdn: ControlCdn;

beforeAll(async () => {
  setup = await startNatsCdn({ edges: EDGES, dns: true });
  ({ nats, cdn } = setup);
}, 180_000);

afterAll(async () => {
  await setup?.stop();
});

/** The origin serves `path` as version `v` (its own ETag), cacheable for 10 minutes, with optional tags. */
function serve(path: string, v: string, tags?: string) {
  cdn.origin.set(path, { headers: { "cache-control": "max-age=600", etag: `"${v}"`, ...(tags ? { "cache-tag": tags } : {}) }, body: `${path} ${v}` });
}

/** Stores `path` at every running edge: MISS, then HIT. */
async function storeAt(edges: string[], path: string) {
  for (const e of edges) {
    await cdn.get(e, path);
    expect((await cdn.get(e, path)).xcs).toBe("HIT");
  }
  await new Promise((r) => setTimeout(r, 5)); // a purge comes strictly after the store
}

function curl(args: string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) =>
    execFile("curl", ["-s", "-w", "\n%{http_code}", ...args], { timeout: 20_000 }, (err, out) => {
      if (err) return reject(err);
      const i = out.lastIndexOf("\n");
      resolve({ status: Number(out.slice(i + 1)), body: out.slice(0, i) });
    }),
  );
}

describe("purges on the control plane", () => {
  it("a purge through any edge is stored, reported applied by every edge, and every edge answers MISS", async () => {
    serve("/a", "v1");
    await storeAt(EDGES, "/a");
    serve("/a", "v2");
    const { status, json } = await cdn.purge("na-sea", { urls: [`http://${SITE}/a`] });
    expect(status).toBe(200);
    expect(json).toMatchObject({ stored: true, stream: "PARROT_CONTROL", applied: [...EDGES].sort(), pending: [] });
    // The stream's creation time is its own field (a recreated stream numbers its messages anew), not "stream".
    expect((json as { streamCreated?: string }).streamCreated).toMatch(/^\d{4}-\d\d-\d\dT/);
    for (const e of EDGES) expect(await cdn.get(e, "/a")).toMatchObject({ xcs: "MISS", body: "/a v2" });
  });

  it("PURGE without the token is refused (401), never reaches the origin and evicts nothing; with it, every edge purges", async () => {
    serve("/m", "v1");
    await storeAt(EDGES, "/m");
    const hits = cdn.origin.hitsOf("/m");
    const refused = await curl(["-X", "PURGE", "-H", `Host: ${SITE}`, cdn.url("eu-lon", "/m")]);
    expect(refused.status).toBe(401);
    const wrong = await curl(["-X", "PURGE", "-H", `Host: ${SITE}`, "-H", "Authorization: Bearer not-the-token-at-all", cdn.url("as-pek", "/m")]);
    expect(wrong.status).toBe(401);
    expect(cdn.origin.hitsOf("/m")).toBe(hits);
    for (const e of EDGES) expect((await cdn.get(e, "/m")).xcs).toBe("HIT");

    serve("/m", "v2");
    const purged = await curl(["-X", "PURGE", "-H", `Host: ${SITE}`, "-H", `Authorization: Bearer ${TOKEN}`, cdn.url("eu-lon", "/m")]);
    expect(purged.status).toBe(200);
    expect(JSON.parse(purged.body)).toMatchObject({ stored: true, pending: [] });
    for (const e of EDGES) expect(await cdn.get(e, "/m")).toMatchObject({ xcs: "MISS", body: "/m v2" });

    // Soft: the next request revalidates (304 from the origin: same ETag) instead of refetching.
    await new Promise((r) => setTimeout(r, 5));
    const soft = await curl(["-X", "PURGE", "-H", `Host: ${SITE}`, "-H", `Authorization: Bearer ${TOKEN}`, "-H", "Fastly-Soft-Purge: 1", cdn.url("na-sea", "/m")]);
    expect(soft.status).toBe(200);
    for (const e of EDGES) expect((await cdn.get(e, "/m")).xcs).toBe("REVALIDATED");
  });

  it("an edge stopped during a purge is named pending, and serves MISS on its first request after its restart", async () => {
    serve("/s", "v1", "stopped-case");
    await storeAt(EDGES, "/s");
    await cdn.stopEdge("as-pek");
    serve("/s", "v2", "stopped-case");
    const called = performance.now();
    const { status, json } = await cdn.purge("eu-lon", { tags: ["stopped-case"] });
    // as-pek said it stopped: the call does not wait report_ms (3 s here) for it.
    expect(performance.now() - called).toBeLessThan(3000);
    expect(status).toBe(202);
    expect(json.applied).toEqual(["eu-lon", "na-sea"]);
    expect(json.pending).toEqual([{ edge: "as-pek", detail: expect.stringMatching(/^stopped \d+ s ago/) }]);

    const waited = await cdn.cli(["--tag", "stopped-case", "--wait", "--timeout", "2"]);
    expect(waited.code).toBe(1);
    expect(waited.stdout).toMatch(/^stored: sequence \d+ of PARROT_CONTROL\nok   eu-lon\nok   na-sea\npending as-pek: stopped/);
    expect(waited.stderr).toMatch(/not applied within 2 s at: as-pek/);

    const restarted = await cdn.startEdge("as-pek");
    expect(restarted.output()).toMatch(/control: NATS JetStream .*; caught up at sequence \d+/);
    // Every control line says when: an operator lines them up with the NATS servers' logs.
    const controlLines = restarted.output().split("\n").filter((l) => l.includes("control: "));
    expect(controlLines.length).toBeGreaterThan(1);
    for (const l of controlLines) expect(l).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z control: /);
    expect(await cdn.get("as-pek", "/s")).toMatchObject({ xcs: "MISS", body: "/s v2" });

    const all = await cdn.cli(["--tag", "stopped-case", "--wait", "--timeout", "20"]);
    expect(all).toMatchObject({ code: 0, stderr: "" });
    expect(all.stdout.split("\n").slice(1, 4)).toEqual(["ok   as-pek", "ok   eu-lon", "ok   na-sea"]);
  });

  it("purges 1,000 URLs in one call at every edge", async () => {
    const paths = Array.from({ length: 1000 }, (_, i) => `/bulk/${i}`);
    for (const p of paths) serve(p, "v1");
    const inBatches = async (fn: (edge: string, path: string) => Promise<void>) => {
      const jobs = EDGES.flatMap((e) => paths.map((p) => [e, p] as const));
      for (let i = 0; i < jobs.length; i += 24) await Promise.all(jobs.slice(i, i + 24).map(([e, p]) => fn(e, p)));
    };
    await inBatches(async (e, p) => void (await cdn.get(e, p)));
    await inBatches(async (e, p) => expect((await cdn.get(e, p)).xcs, `${e} ${p}`).toBe("HIT"));
    for (const p of paths) serve(p, "v2");
    const { status, json } = await cdn.purge("as-pek", { urls: paths.map((p) => `http://${SITE}${p}`) });
    expect(status, JSON.stringify({ ...json, applied: json.applied })).toBe(200);
    expect(json).toMatchObject({ stored: true, applied: [...EDGES].sort(), pending: [] });
    await inBatches(async (e, p) => expect(await cdn.get(e, p), `${e} ${p}`).toMatchObject({ xcs: "MISS", body: `${p} v2` }));
  }, 240_000);

  it("refuses a malformed purge with 400 and the reason, publishing nothing", async () => {
    const { status, json } = await cdn.purge("eu-lon", { urls: "not-a-list" });
    expect(status).toBe(400);
    expect(json.error).toMatch(/"urls" must be a list/);
  });
});

describe("drains on the control plane", () => {
  it("a drain published for an edge reaches its box, its health, and so the DNS node's answers", async () => {
    const config = parseConfig(readFileSync(cdn.config, "utf8"));
    const nc = await connectOnce(config.control!, "test operator");
    const client = await ControlClient.open(nc, config.control!, EDGES);
    try {
      const director = () => cdn.dns!.dig(`director.geo.example.org`, "A");
      await until("every edge in the DNS answers", async () => ((await director()).length === 3 ? true : undefined));
      const published = await client.publishDrain("na-sea", true);
      const applied = await client.waitApplied(published, 10_000, ["na-sea"]);
      expect(applied.applied).toEqual(["na-sea"]);
      await until("na-sea out of the DNS answers", async () => {
        const a = await director();
        return a.length === 2 && !a.includes("127.0.0.3") ? true : undefined;
      });
      expect(client.presence().get("na-sea")).toMatchObject({ caughtUp: true, state: "running" });
      await until("presence says draining", async () => (client.presence().get("na-sea")?.health === "draining" ? true : undefined));
      await client.publishDrain("na-sea", false);
      await until("na-sea back in the DNS answers", async () => ((await director()).includes("127.0.0.3") ? true : undefined));
    } finally {
      await nc.close();
    }
  });

  it("a drain through the edge's endpoint takes effect at once and is stored on the control plane", async () => {
    const drain = (draining: boolean) =>
      curl(["-X", "POST", "-H", `Authorization: Bearer ${TOKEN}`, "-d", JSON.stringify({ draining }), cdn.edgeUrl("as-pek") + "/.well-known/cdn/drain"]);
    const on = await drain(true);
    expect(on.status).toBe(200);
    expect(JSON.parse(on.body)).toMatchObject({ edge: "as-pek", draining: true, control: { stored: true, applied: true } });
    expect((await curl([cdn.edgeUrl("as-pek") + "/.well-known/cdn/health"])).status).toBe(503);
    expect(JSON.parse((await drain(false)).body)).toMatchObject({ draining: false, control: { stored: true } });
    expect((await curl([cdn.edgeUrl("as-pek") + "/.well-known/cdn/health"])).status).toBe(200);
  });
});
