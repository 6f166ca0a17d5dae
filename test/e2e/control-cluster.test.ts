/**
 * The production shape: a three-server JetStream cluster (streams with 3 replicas) under three edge boxes. The
 * server leading the control stream is killed (SIGKILL) between purges, while one edge box is down too: every call
 * made during the election is stored (retried within its deadline), no purge that was reported stored is lost, the box that was down catches up on all of them, and the killed server rejoins.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { parseConfig } from "../../src/config/config.ts";
import { connectOnce } from "../../src/control/nats.ts";
import { NATS_USER, SITE, startControlCdn, until, type ControlCdn, type PurgeAnswer } from "../support/control-cdn.ts";
import { startTestCluster, type TestCluster } from "../support/nats.ts";

const EDGES = ["eu-lon", "na-sea", "as-pek"];
let dir: string;
let cluster: TestCluster;
let cdn: ControlCdn;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "parrot-nats-cluster-"));
  cluster = await startTestCluster(dir, NATS_USER);
  cdn = await startControlCdn({ edges: EDGES, servers: cluster.urls, control: "replicas = 3" });
}, 180_000);

afterAll(async () => {
  await cdn?.stop();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function serve(path: string, v: string, tag: string) {
  cdn.origin.set(path, { headers: { "cache-control": "max-age=600", etag: `"${v}"`, "cache-tag": tag }, body: `${path} ${v}` });
}

/** The stream's state as the cluster sees it (through any live server). */
async function streamInfo(urls: string[]) {
  const config = parseConfig(readFileSync(cdn.config, "utf8"));
  const nc = await connectOnce({ ...config.control!, servers: urls }, "test");
  try {
    return await (await jetstreamManager(nc)).streams.info("PARROT_CONTROL");
  } finally {
    await nc.close();
  }
}

describe("a three-server JetStream cluster", () => {
  it("loses no purge when the server leading the control stream is killed", async () => {
    const paths = [1, 2, 3, 4, 5, 6].map((i) => `/k${i}`);
    paths.forEach((p, i) => serve(p, "v1", `k${i + 1}`));
    for (const e of EDGES) for (const p of paths) await cdn.get(e, p);
    await new Promise((r) => setTimeout(r, 5));

    // Stored (a 202 on a loaded machine: an edge's report still on its way; the checks below see it applied).
    const first = await cdn.purge("eu-lon", { tags: ["k1"] });
    expect(first.json.stored, JSON.stringify(first.json)).toBe(true);
    expect([200, 202], JSON.stringify(first.json)).toContain(first.status);
    const info = await streamInfo(cluster.urls);
    expect(info.config.num_replicas).toBe(3);
    const leader = Number(info.cluster!.leader!.replace(/^n/, "")) - 1;

    await cdn.stopEdge("as-pek");
    await cluster.servers[leader]!.kill();
    const live = cluster.urls.filter((_, i) => i !== leader);

    // Five more purges through the live edges, made at once after the kill: a call during the leader election is
    // published again (same message id) until JetStream acknowledges it, within publish_deadline_ms, and says so.
    const stored: PurgeAnswer[] = [first.json];
    for (let i = 2; i <= 6; i++) {
      paths.slice(i - 1).forEach((p, j) => serve(p, `v${i}`, `k${i + j}`));
      const answer = await cdn.purge(i % 2 ? "na-sea" : "eu-lon", { tags: [`k${i}`] });
      expect(answer.json.stored, `purge k${i}: ${JSON.stringify(answer.json)}`).toBe(true);
      expect([200, 202]).toContain(answer.status);
      if (answer.json.retries) {
        console.log(`purge k${i}: stored after ${answer.json.retries} retries: ${answer.json.retried}`);
        expect(answer.json.retried).toMatch(/leader election in progress|no acknowledgement in time|connection/);
      }
      stored.push(answer.json);
    }
    const seqs = stored.map((a) => a.seq!);
    expect(new Set(seqs).size).toBe(6);

    // A purge answered 202 (stored, some edge pending: its agent's consumer may still be moving to a new leader)
    // reaches that edge a little later: each live edge must miss every purged path within a bounded wait.
    for (const e of ["eu-lon", "na-sea"]) {
      for (const p of paths) {
        await until(`${e} ${p} purged`, async () => ((await cdn.get(e, p)).xcs === "MISS" ? true : undefined), 30_000);
      }
    }
    await cdn.startEdge("as-pek");
    for (const p of paths) expect((await cdn.get("as-pek", p)).xcs, `as-pek ${p}`).toBe("MISS");

    // The killed server comes back and catches up: the stream's replicas are all current again, up to the last purge.
    await cluster.restart(leader);
    const restarted = `n${leader + 1}`;
    const after = await until(
      "the restarted server holds the whole stream again",
      async () => {
        const info = await streamInfo(live);
        const replicas = [info.cluster!.leader!, ...(info.cluster!.replicas ?? []).filter((r) => r.current).map((r) => r.name)];
        return replicas.includes(restarted) && new Set(replicas).size === 3 ? info : undefined;
      },
      60_000,
    );
    expect(after.state.last_seq).toBeGreaterThanOrEqual(Math.max(...seqs));
    const cli = await cdn.cli(["--url", `http://${SITE}/k6`, "--wait", "--timeout", "30"]);
    expect(cli.code).toBe(0);
  }, 240_000);
});
