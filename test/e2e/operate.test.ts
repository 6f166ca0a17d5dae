/**
 * Operating the CDN with real processes: two edges (bare workerd, each with its own disk store) in one config,
 * purged through either edge and through the CLI, metrics parsed as Prometheus text, JSON access logs, the trace.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: the package ships no types
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { ROOT, startNodeScript, type Running } from "../../src/node/children.ts";
import { ScriptedOrigin } from "../support/scripted-origin.ts";
import { freePort } from "../support/ports.ts";

const TOKEN = "test-admin-token-0123456789";
const origin = new ScriptedOrigin();
let served: Served;
let dir: string;
let config: string;
const ports: Record<string, number> = {};
const edges: Record<string, Running> = {};


async function startEdge(name: string) {
  edges[name] = await startNodeScript(
    "scripts/edge.ts",
    ["--config", config, "--name", name, "--port", String(ports[name]), "--store", join(dir, `store-${name}`)],
    /edge ready: (\S+)/,
  );
}

const url = (name: string, path: string) => `http://127.0.0.1:${ports[name]}${path}`;
async function xcs(name: string, path: string) {
  const res = await fetch(url(name, path));
  await res.arrayBuffer();
  return res.headers.get("x-cache-status");
}
/** Stores `path` at both edges (MISS then HIT). */
async function storeEverywhere(path: string, headers: Record<string, string> = {}) {
  origin.set(path, { headers: { "cache-control": "max-age=600", etag: `"${path}"`, ...headers }, body: `body of ${path}` });
  for (const e of ["a", "b"]) {
    await xcs(e, path);
    expect(await xcs(e, path)).toBe("HIT");
  }
  await new Promise((r) => setTimeout(r, 5)); // a purge must come strictly after the store
}
const purge = (via: string, body: object, token = TOKEN) =>
  fetch(url(via, "/.well-known/cdn/purge"), {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

beforeAll(async () => {
  served = await serveFetch(origin.handle);
  dir = mkdtempSync(join(tmpdir(), "parrot-operate-"));
  ports.a = await freePort();
  ports.b = await freePort();
  config = join(dir, "cdn.toml");
  writeFileSync(
    config,
    `[edge]
origin = "${served.url}"

[admin]
token = "${TOKEN}"

[[edges]]
name = "a"
url = "http://127.0.0.1:${ports.a}"
lat = 51.5
lon = -0.1

[[edges]]
name = "b"
url = "http://127.0.0.1:${ports.b}"
lat = 40.7
lon = -74.0
`,
  );
  await startEdge("a");
  await startEdge("b");
});

afterAll(async () => {
  await Promise.allSettled(Object.values(edges).map((e) => e.stop()));
  await served?.close();
});

describe("purge", () => {
  it("refuses purges without the token, or with a wrong one, and changes nothing", async () => {
    await storeEverywhere("/keep");
    const none = await fetch(url("a", "/.well-known/cdn/purge"), { method: "POST", body: JSON.stringify({ all: true }) });
    expect(none.status).toBe(401);
    expect((await purge("a", { all: true }, "wrong-token-wrong-token")).status).toBe(401);
    expect(await xcs("a", "/keep")).toBe("HIT");
    expect(await xcs("b", "/keep")).toBe("HIT");
  });

  it("answers a malformed purge with 400 and the reason", async () => {
    const res = await purge("a", { urls: "not-a-list" });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/"urls" must be a list/);
  });

  it("purges a URL at every edge from one call, reporting per edge", async () => {
    await storeEverywhere("/u");
    const res = await purge("a", { urls: [url("a", "/u"), url("b", "/u")] });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { results: unknown }).results).toEqual([
      // Each edge held the URL of its own host (a key is host + path): one of the two.
      { edge: "a", ok: true, stored: 1 },
      { edge: "b", ok: true, status: 200, stored: 1 },
    ]);
    expect(await xcs("a", "/u")).toBe("MISS");
    expect(await xcs("b", "/u")).toBe("MISS");
  });

  it("purges by tag, prefix and host through the CLI", async () => {
    await storeEverywhere("/t/one", { "cache-tag": "news" });
    await storeEverywhere("/t/two");
    const cli = (args: string[]) =>
      execFileSync(process.execPath, [join(ROOT, "scripts/purge.ts"), "--config", config, ...args], { encoding: "utf8", timeout: 20_000 });
    expect(cli(["--tag", "news"])).toBe("ok   a\nok   b\n");
    expect(await xcs("a", "/t/one")).toBe("MISS");
    expect(await xcs("b", "/t/two")).toBe("HIT");
    await new Promise((r) => setTimeout(r, 5));
    cli(["--prefix", url("b", "/t/")]);
    expect(await xcs("b", "/t/two")).toBe("MISS");
    expect(await xcs("a", "/t/two")).toBe("HIT"); // another host: a's key is 127.0.0.1:<port a>/t/two
    await new Promise((r) => setTimeout(r, 5));
    cli(["--host", "127.0.0.1"]);
    expect(await xcs("a", "/t/two")).toBe("MISS");
  });

  it("soft-purges: the next request revalidates instead of refetching", async () => {
    await storeEverywhere("/soft");
    await purge("b", { urls: [url("a", "/soft")], soft: true });
    expect(await xcs("a", "/soft")).toBe("REVALIDATED");
    expect(await xcs("a", "/soft")).toBe("HIT");
  });

  it("keeps a purge across a restart of the edge", async () => {
    await storeEverywhere("/r/x");
    await purge("a", { prefixes: [url("b", "/r/")], fanout: false });
    await purge("b", { prefixes: [url("b", "/r/")], fanout: false });
    await edges.b!.stop();
    await startEdge("b");
    expect(await xcs("b", "/r/x")).toBe("MISS");
  });
});

describe("metrics, logs and trace", () => {
  it("exposes Prometheus metrics only with the token", async () => {
    expect((await fetch(url("a", "/.well-known/cdn/metrics"))).status).toBe(401);
    const res = await fetch(url("a", "/.well-known/cdn/metrics"), { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusTextFormat(await res.text()) as Array<{ name: string; metrics: Array<{ labels?: Record<string, string>; value?: string }> }>;
    const requests = families.find((f) => f.name === "parrot_edge_requests_total")!;
    const hits = requests.metrics.filter((m) => m.labels?.cache_status === "HIT").reduce((n, m) => n + Number(m.value), 0);
    expect(hits).toBeGreaterThan(0);
    expect(families.map((f) => f.name)).toEqual(expect.arrayContaining(["parrot_edge_hit_ratio", "parrot_edge_origin_seconds"]));
  });

  it("writes one JSON line per request with every field", async () => {
    origin.set("/logged", { headers: { "cache-control": "max-age=60" }, body: "l" });
    await xcs("a", "/logged?x=1");
    // Lines are written in batches, at least every 250 ms.
    const logged = () => edges.a!.output().split("\n").reverse().find((l) => l.includes('"/logged?x=1"'));
    for (let i = 0; i < 60 && !logged(); i++) await new Promise((r) => setTimeout(r, 50));
    const line = logged();
    expect(line).toBeDefined();
    const entry = JSON.parse(line!.slice(line!.indexOf("{")));
    expect(Object.keys(entry).sort()).toEqual(
      ["bytes", "cache_status", "client", "duration_ms", "edge", "host", "method", "origin_ms", "origin_status", "path", "shield", "status", "time"].sort(),
    );
    // [privacy] by default: the client's network, not its address.
    expect(entry).toMatchObject({ edge: "a", client: "127.0.0.0/24", method: "GET", status: 200, cache_status: "MISS", origin_status: 200 });
  });

  it("traces how the edge sees a request", async () => {
    const text = await (await fetch(url("a", "/.well-known/cdn/trace?url=/img/logo.png?b=2"))).text();
    const fields = Object.fromEntries(text.trim().split("\n").map((l) => l.split(/=(.*)/s).slice(0, 2)));
    expect(fields).toMatchObject({ ip: "127.0.0.1", edge: "a", scheme: "http", key: `127.0.0.1:${ports.a}/img/logo.png?b=2` });
  });
});
