/**
 * A bare workerd edge box with several processes (`processes = 2`): one store process and two edge processes sharing
 * the listening socket. Request coalescing holds across the processes (the store holds the locks), the metrics show
 * the store's size, entries and evictions and the hot tier, the trace locates the client with the configured GeoIP
 * file, connections are spread over both processes, a kill -9 of one edge process leaves the box serving while its
 * loop starts it again, and a kill -9 of the store process leaves the edges answering (memory tier, origin) until
 * the store is recovered and started again.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { Agent, get as httpGet } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
// @ts-expect-error: the package ships no types
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { startEdgeWorkerd, type RunningWorkerdEdge } from "../../src/node/workerd-host.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A GET on a connection of its own (no keep-alive): the kernel picks the edge process for each. */
function onNewConnection(path: string): Promise<{ status: number; xcs: string | null; body: string }> {
  return new Promise((done, fail) => {
    httpGet(`${edge.url}${path}`, { agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => done({ status: res.statusCode!, xcs: (res.headers["x-cache-status"] as string) ?? null, body }));
    }).on("error", fail);
  });
}
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const TOKEN = "processes-test-token-0123456789";
const MMDB = resolve(import.meta.dirname, "../fixtures/GeoIP2-City-Test.mmdb");

let originRequests = new Map<string, number>();
const versions = new Map<string, number>();
let served: Served;
let edge: RunningWorkerdEdge;
let dir: string;

beforeAll(async () => {
  served = await serveFetch(async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "POST") {
      versions.set(path, (versions.get(path) ?? 1) + 1);
      return new Response("changed\n");
    }
    if (path.startsWith("/versioned/")) {
      return new Response(`${path} v${versions.get(path) ?? 1}\n`, { headers: { "cache-control": "max-age=600" } });
    }
    originRequests.set(path, (originRequests.get(path) ?? 0) + 1);
    // The coalesced key is slow: long enough for every concurrent request to arrive while the first is at the origin.
    if (path.startsWith("/coalesce/")) await sleep(1500);
    return new Response(`body of ${path}\n`.repeat(20), { headers: { "cache-control": "max-age=600" } });
  });
  dir = mkdtempSync(join(tmpdir(), "parrot-processes-e2e-"));
  const configText = `[edge]
name = "multi"
origin = "${served.url}"
access_log = false
processes = 2
trusted_proxies = ["127.0.0.1"]
[admin]
token = "${TOKEN}"
[geoip]
city = ${JSON.stringify(MMDB)}
`;
  edge = await startEdgeWorkerd({ configText, storeDir: join(dir, "store"), log: () => {} });
}, 60_000);

afterAll(async () => {
  await edge?.stop();
  await served?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("an edge box with two workerd processes", () => {
  it("runs one store process and two edge processes", () => {
    expect(new Set(edge.edgePids()).size).toBe(2);
    expect(edge.edgePids()).not.toContain(edge.storePid());
  });

  it("200 concurrent misses of one key make one origin request, across the processes", async () => {
    // Separate connections (no keep-alive pool sharing), so the kernel spreads them over both processes.
    const answers = await Promise.all(
      Array.from({ length: 200 }, () =>
        fetch(`${edge.url}/coalesce/one`, { headers: { connection: "close" } }).then(async (r) => ({
          status: r.status,
          xcs: r.headers.get("x-cache-status"),
          body: await r.text(),
        })),
      ),
    );
    expect(answers.every((a) => a.status === 200 && a.body.startsWith("body of /coalesce/one"))).toBe(true);
    expect(originRequests.get("/coalesce/one")).toBe(1);
    expect(answers.filter((a) => a.xcs === "MISS")).toHaveLength(1);
  });

  it("the metrics carry the store's size, entries, evictions and the hot tier", async () => {
    await fetch(`${edge.url}/metrics-entry`).then((r) => r.text());
    await fetch(`${edge.url}/metrics-entry`).then((r) => r.text());
    const res = await fetch(`${edge.url}/.well-known/cdn/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    const families = parsePrometheusTextFormat(await res.text()) as Array<{
      name: string;
      type: string;
      metrics: Array<{ value: string; labels?: Record<string, string> }>;
    }>;
    const fam = (name: string) => families.find((f) => f.name === name);
    expect(Number(fam("parrot_edge_store_bytes")?.metrics[0]?.value)).toBeGreaterThan(0);
    expect(Number(fam("parrot_edge_store_entries")?.metrics[0]?.value)).toBeGreaterThanOrEqual(2);
    expect(fam("parrot_edge_store_max_bytes")?.type).toBe("GAUGE");
    // Every origin fetch is over and stored: no coalescing lock is left behind (a store of a key releases it).
    expect(Number(fam("parrot_edge_store_locks")?.metrics[0]?.value)).toBe(0);
    const evictions = fam("parrot_edge_store_evictions_total");
    expect(evictions?.type).toBe("COUNTER");
    expect(evictions?.metrics.map((m) => m.labels?.reason).sort()).toEqual(["expired", "inactive", "lru"]);
    expect(fam("parrot_edge_store_hot_bytes")?.type).toBe("GAUGE");
    expect(fam("parrot_edge_store_hot_entries")).toBeDefined();
    expect(fam("parrot_edge_store_hot_hits_total")?.type).toBe("COUNTER");
  });

  it("the trace believes the trusted proxy's X-Forwarded-For and locates the client with the GeoIP file", async () => {
    const text = await (await fetch(`${edge.url}/.well-known/cdn/trace`, { headers: { "x-forwarded-for": "81.2.69.142" } })).text();
    expect(text).toContain("ip=81.2.69.142\n");
    const loc = /^loc=(.*)$/m.exec(text)?.[1];
    expect(loc).toMatch(/^GB London/);
    // An address the test database does not know.
    const unknown = await (await fetch(`${edge.url}/.well-known/cdn/trace`, { headers: { "x-forwarded-for": "192.0.2.1" } })).text();
    expect(unknown).toContain("loc=unknown\n");
  });

  it("kill -9 of one edge process: the box keeps serving and the process is started again", async () => {
    const [victim, other] = edge.edgePids();
    process.kill(victim!, "SIGKILL");
    // Connections the killed process had accepted are lost with it; once it is gone, nothing else may fail.
    for (let i = 0; i < 200 && alive(victim!); i++) await sleep(10);
    expect(alive(victim!)).toBe(false);
    let ok = 0;
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`${edge.url}/after-kill/${i % 5}`, { headers: { connection: "close" } }).catch(() => null);
      if (r?.status === 200) ok++;
      await r?.text();
    }
    expect(ok).toBe(100);
    let pids = edge.edgePids();
    for (let i = 0; i < 100 && !pids.some((p) => p !== victim && p !== other); i++) {
      await sleep(50);
      pids = edge.edgePids();
    }
    expect(pids).toContain(other);
    expect(pids).not.toContain(victim);
    expect(pids).toHaveLength(2);
    const r = await fetch(`${edge.url}/.well-known/cdn/health`);
    expect(r.status).toBe(200);
    await r.text();
  });

  it("spreads keep-alive connections over both edge processes (each has its own SO_REUSEPORT socket)", async () => {
    const port = new URL(edge.url).port;
    const agent = new Agent({ keepAlive: true, maxSockets: 20 });
    const clientPorts = new Set<number>();
    const once = (path: string) =>
      new Promise<number>((done, fail) => {
        httpGet({ host: "127.0.0.1", port, path, agent }, (res) => {
          clientPorts.add(res.socket.localPort!);
          res.resume();
          res.on("end", () => done(res.statusCode!));
        }).on("error", fail);
      });
    const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => once(`/spread/${i % 4}`)));
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(clientPorts.size).toBe(20);
    // Which workerd owns the server side of each of our 20 connections (still open: keep-alive).
    const owners = execFileSync("ss", ["-Htnp", "state", "established", `( sport = :${port} )`], { encoding: "utf8" })
      .split("\n")
      .filter((line) => clientPorts.has(Number(/:(\d+)\s+users:/.exec(line)?.[1])))
      .map((line) => /pid=(\d+)/.exec(line)?.[1])
      .filter((pid): pid is string => !!pid);
    agent.destroy();
    const perProcess = new Map<string, number>();
    for (const pid of owners) perProcess.set(pid, (perProcess.get(pid) ?? 0) + 1);
    expect(owners.length).toBe(20);
    expect([...perProcess.keys()].sort()).toEqual(edge.edgePids().map(String).sort());
    expect(Math.min(...perProcess.values())).toBeGreaterThanOrEqual(3);
  });

  it("kill -9 of the store process: the edges keep answering, and the store is recovered and started again", async () => {
    // Warm: in the store and in both processes' memory tiers (a new connection each time lands on either).
    for (let i = 0; i < 30; i++) await onNewConnection("/survives");
    const victim = edge.storePid();
    process.kill(victim, "SIGKILL");
    for (let i = 0; i < 200 && alive(victim); i++) await sleep(10);
    const during: { status: number; xcs: string | null; body: string }[] = [];
    for (let i = 0; i < 20; i++) during.push(await onNewConnection(i % 2 ? "/survives" : `/while-down/${i}`));
    expect(during.every((d) => d.status === 200 && d.body.startsWith("body of /"))).toBe(true);
    expect(during.filter((_, i) => i % 2).map((d) => d.xcs)).toEqual(Array(10).fill("HIT")); // the memory tiers answered
    for (let i = 0; i < 200 && (edge.storePid() === victim || !alive(edge.storePid())); i++) await sleep(50);
    expect(edge.storePid()).not.toBe(victim);
    // Back: what the disk store held before the kill is still there.
    let xcs: string | null = null;
    for (let i = 0; i < 100 && xcs !== "HIT"; i++) {
      const r = await fetch(`${edge.url}/metrics-entry`, { headers: { connection: "close" } });
      xcs = r.headers.get("x-cache-status");
      await r.text();
      if (xcs !== "HIT") await sleep(50);
    }
    expect(xcs).toBe("HIT");
  });

  it("a POST through one process invalidates the URL in the other process's memory tier too (within a second)", async () => {
    for (let i = 0; i < 30; i++) expect((await onNewConnection("/versioned/a")).body).toBe("/versioned/a v1\n");
    const post = await fetch(`${edge.url}/versioned/a`, { method: "POST", body: "x", headers: { connection: "close" } });
    expect(post.status).toBe(200);
    await post.text();
    await sleep(1_500);
    const after = await Promise.all(Array.from({ length: 20 }, () => onNewConnection("/versioned/a")));
    expect(after.map((r) => r.body)).toEqual(Array(20).fill("/versioned/a v2\n"));
  });
});
