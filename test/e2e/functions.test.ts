/**
 * Edge functions on a bare workerd edge box: each `[[functions]]` entry runs in a workerd process of its own, in
 * front of the cache. Asked with real HTTP clients (node:http, curl) by Host: a redirect, a header rewrite that
 * passes through the cache (MISS then HIT), answers by request.cf.country for clients of two countries (the GeoIP
 * test database, the client address through the trusted proxy's X-Forwarded-For as the front door sends it), a
 * function that throws (on_error "cache" and "503"), an infinite loop (the watchdog ends it within its CPU budget,
 * another site's HIT answers meanwhile), and a function that tries the admin endpoints, a disallowed host and other
 * sites' secrets (refused, absent).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { startNodeScript } from "../../src/node/children.ts";
import { startEdgeWorkerd, type RunningWorkerdEdge } from "../../src/node/workerd-host.ts";
import { waitFor } from "../support/anycast.ts";
import { cpuMsFromStat } from "../../src/functions/watchdog.ts";

const cpuOf = (pid: number) => {
  try {
    return cpuMsFromStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
};

const TOKEN = "functions-test-token-0123456789";
const MMDB = resolve(import.meta.dirname, "../fixtures/GeoIP2-City-Test.mmdb");
const FIXTURES = resolve(import.meta.dirname, "../fixtures/functions");
/** The loop function's CPU budget. */
const LOOP_CPU_MS = 1000;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}
/** A GET with a chosen Host header (and other headers), on its own connection. */
function get(host: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const url = new URL(edge.url);
  return new Promise((done, fail) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, headers: { host, ...headers }, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => done({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on("error", fail);
    req.setTimeout(60_000, () => req.destroy(new Error(`GET ${host}${path}: no answer in 60 s`)));
    req.end();
  });
}

const originSeen: { path: string; headers: Record<string, string> }[] = [];
let served: Served;
let edge: RunningWorkerdEdge;
let dir: string;
const logs: string[] = [];
let configTextUsed = "";

beforeAll(async () => {
  served = await serveFetch((req) => {
    const url = new URL(req.url);
    originSeen.push({ path: url.pathname, headers: Object.fromEntries(req.headers) });
    return new Response(`origin ${url.pathname}\n`, { headers: { "cache-control": "max-age=600", "content-type": "text/plain" } });
  });
  dir = mkdtempSync(join(tmpdir(), "parrot-functions-e2e-"));
  writeFileSync(join(dir, "geo.secrets"), "GEO_SECRET=only-geo-sees-this\n");
  const fn = (id: string, hosts: string, extra = "") =>
    `[[functions]]\nid = "${id}"\nhosts = ["${hosts}"]\nmodule = ${JSON.stringify(join(FIXTURES, `${id}.js`))}\n${extra}\n`;
  const configText = `[edge]
name = "test-colo"
origin = "${served.url}"
access_log = true
trusted_proxies = ["127.0.0.1"]
[admin]
token = "${TOKEN}"
[geoip]
city = ${JSON.stringify(MMDB)}
${fn("redirect", "redirect.test")}
${fn("rewrite", "rewrite.test")}
${fn("geo", "geo.test", `vars = { GREETING = "hello" }\nsecrets_file = "geo.secrets"`)}
${fn("throws", "throws-cache.test", 'on_error = "cache"')}
[[functions]]
id = "throws-503"
hosts = ["throws-503.test"]
module = ${JSON.stringify(join(FIXTURES, "throws.js"))}
on_error = "503"
${fn("loop", "loop.test", `cpu_ms = ${LOOP_CPU_MS}\non_error = "503"`)}
${fn("sneaky", "sneaky.test", 'allow_hosts = ["allowed.example"]')}
[[functions]]
id = "missing"
hosts = ["missing.test"]
module = "no-such-file.js"
on_error = "cache"
${fn("bomb", "bomb.test", 'memory_mb = 32\ncpu_ms = 20000\non_error = "503"')}
`;
  writeFileSync(join(dir, "cdn.toml"), configText);
  configTextUsed = configText;
  edge = await startEdgeWorkerd({ configText, configDir: dir, storeDir: join(dir, "store"), log: (l) => logs.push(l) });
}, 120_000);

afterAll(async () => {
  await edge?.stop();
  await served?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("edge functions on bare workerd", () => {
  it("each function runs in a workerd process of its own, apart from the edge's", () => {
    const pids = edge.functions!.running.map((r) => r.pid());
    expect(new Set(pids).size).toBe(8);
    for (const pid of pids) expect(edge.edgePids()).not.toContain(pid);
  });

  it("a function whose module cannot be bundled is left out with its reason logged; its site is served as its on_error says", async () => {
    expect(edge.functions!.running.map((r) => r.id)).not.toContain("missing");
    expect(logs.join("")).toMatch(/functions "missing": module \S*no-such-file\.js does not bundle: .*Could not resolve/);
    const res = await get("missing.test", "/left-out");
    expect([res.status, res.body, res.headers["x-cache-status"]]).toEqual([200, "origin /left-out\n", "MISS"]);
  });

  it("a redirect function answers itself: the origin is never asked", async () => {
    const before = originSeen.length;
    const res = await get("redirect.test", "/old/page?x=1");
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe("https://www.redirect.test/new/page?x=1");
    expect(originSeen.length).toBe(before);
  });

  it("a header-rewriting function passes through the cache: request header added for the origin, answer header added, MISS then HIT", async () => {
    const first = await get("rewrite.test", "/doc");
    expect(first.status).toBe(200);
    expect(first.body).toBe("origin /doc\n");
    expect(first.headers["x-rewritten"]).toBe("yes");
    expect(first.headers["x-cache-status"]).toBe("MISS");
    expect(originSeen.find((s) => s.path === "/doc")?.headers["x-from-function"]).toBe("rewrite");
    const second = await get("rewrite.test", "/doc");
    expect(second.headers["x-cache-status"]).toBe("HIT");
    expect(second.headers["x-rewritten"]).toBe("yes");
    expect(originSeen.filter((s) => s.path === "/doc")).toHaveLength(1);
  });

  it("request.cf carries the client's country, city and the edge's name: clients from two countries get their own answers", async () => {
    const gb = await get("geo.test", "/", { "x-forwarded-for": "81.2.69.142" });
    const us = await get("geo.test", "/", { "x-forwarded-for": "216.160.83.56" });
    expect(JSON.parse(gb.body)).toMatchObject({ country: "GB", continent: "EU", city: "London", colo: "test-colo", greeting: "hello", secret: "only-geo-sees-this" });
    expect(JSON.parse(us.body)).toMatchObject({ country: "US", continent: "NA", city: "Milton", colo: "test-colo" });
  });

  it("a client cannot set request.cf: its own x-parrot-cf header is replaced", async () => {
    const res = await get("geo.test", "/", { "x-forwarded-for": "81.2.69.142", "x-parrot-cf": JSON.stringify({ country: "KP", colo: "forged" }) });
    expect(JSON.parse(res.body)).toMatchObject({ country: "GB", colo: "test-colo" });
    const unknown = await get("geo.test", "/", { "x-forwarded-for": "192.0.2.1", "x-parrot-cf": JSON.stringify({ country: "KP" }) });
    expect(JSON.parse(unknown.body).country).toBeUndefined();
  });

  it('a function that throws: on_error = "cache" serves through the cache as if there were no function', async () => {
    const res = await get("throws-cache.test", "/thrown");
    expect(res.status).toBe(200);
    expect(res.body).toBe("origin /thrown\n");
    expect(res.headers["x-cache-status"]).toBe("MISS");
  });

  it('a function that throws: on_error = "503" answers 503', async () => {
    const res = await get("throws-503.test", "/thrown");
    expect(res.status).toBe(503);
  });

  it("an infinite loop: the watchdog kills its process within its CPU budget (503), another site's HIT answers meanwhile, the function serves again after", async () => {
    await get("rewrite.test", "/during-loop"); // stored: a HIT below
    const loop = edge.functions!.running.find((r) => r.id === "loop")!;
    const pidBefore = loop.pid();
    let spinDone = false;
    const spinning = get("loop.test", "/spin").finally(() => (spinDone = true));
    // The loop runs once its process has burnt a good part of its budget since the request was sent.
    const cpu0 = cpuOf(pidBefore)!;
    const spinningNow = await waitFor(async () => ((cpuOf(pidBefore) ?? 0) - cpu0 >= 100 && !spinDone ? true : undefined), 10_000);
    expect(spinningNow?.value, "the loop is burning CPU").toBe(true);
    const hit = await get("rewrite.test", "/during-loop");
    expect(hit.headers["x-cache-status"]).toBe("HIT");
    expect(spinDone, "the HIT answered while the loop still ran").toBe(false);
    const spun = await spinning;
    expect(spun.status).toBe(503);
    expect(loop.watchdog.kills).toBe(1);
    const killed = logs.find((l) => l.includes("watchdog killed"));
    const cpu = Number(/(\d+(?:\.\d+)?) ms of CPU/.exec(killed ?? "")?.[1]);
    expect(cpu).toBeGreaterThanOrEqual(LOOP_CPU_MS);
    // The watchdog's reaction: its timer (every 50 ms) may run late on a loaded machine while the loop keeps burning.
    expect(cpu).toBeLessThan(LOOP_CPU_MS + 500);
    // Started again: the same site's ordinary requests are answered by a new process.
    const again = await waitFor(async () => {
      const r = await get("loop.test", "/fine");
      return r.status === 200 ? r : undefined;
    }, 20_000);
    expect(again?.value.body).toBe("origin /fine\n");
    expect(loop.pid()).not.toBe(pidBefore);
  }, 60_000);

  it("a memory bomb: V8's heap bound (memory_mb) ends its process, the site gets its on_error, the process is started again", async () => {
    const bomb = edge.functions!.running.find((r) => r.id === "bomb")!;
    const pidBefore = bomb.pid();
    const res = await get("bomb.test", "/bomb");
    expect(res.status).toBe(503);
    expect(bomb.watchdog.kills).toBe(0); // the heap bound, not the CPU watchdog
    const again = await waitFor(async () => {
      const r = await get("bomb.test", "/fine");
      return r.status === 200 ? r : undefined;
    }, 20_000);
    expect(again?.value.body).toBe("origin /fine\n");
    expect(bomb.pid()).not.toBe(pidBefore);
  }, 60_000);

  it("a function reaches neither the admin endpoints nor hosts it is not allowed, nor other sites' secrets", async () => {
    const port = new URL(edge.url).port;
    const res = await get("sneaky.test", `/?port=${port}`);
    const seen = JSON.parse(res.body) as Record<string, { status: number; refused: string | null } | string[]>;
    // Its own host, through the cache engine: the CDN's own paths are closed to it.
    expect(seen.purge).toMatchObject({ status: 403 });
    expect(seen.metrics).toMatchObject({ status: 403 });
    // The edge's public socket by address, and any host not in allow_hosts: refused by its gate.
    expect(seen.edgeByAddress).toMatchObject({ status: 403, refused: "1" });
    expect(seen.disallowed).toMatchObject({ status: 403, refused: "1" });
    // Its env holds its own bindings only (none here): no admin token, no store, no other site's secret.
    expect(seen.env).toEqual([]);
    // Its own site through the cache is allowed.
    expect(seen.own).toMatchObject({ status: 200 });
  });
});

describe("metrics", () => {
  it("count each function's requests by outcome", async () => {
    const res = await fetch(`${edge.url}/.well-known/cdn/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const text = await res.text();
    const value = (fn: string, outcome: string) => Number(new RegExp(`^parrot_edge_function_requests_total\\{function="${fn}",outcome="${outcome}"\\} (\\d+)$`, "m").exec(text)?.[1] ?? 0);
    expect(value("redirect", "answered")).toBe(1);
    expect(value("throws", "threw")).toBe(1);
    expect(value("throws-503", "threw")).toBe(1);
    expect(value("missing", "not-running")).toBe(1);
    // The killed request, and the requests made while its process started again.
    expect(value("loop", "down")).toBeGreaterThanOrEqual(1);
    expect(value("loop", "answered")).toBeGreaterThanOrEqual(1);
  });
});

describe("observability", () => {
  it("CPU time and watchdog kills per function and version in the metrics", async () => {
    const figures = await waitFor(async () => {
      const text = await (await fetch(`${edge.url}/.well-known/cdn/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      const of = (name: string) => Number(new RegExp(`^parrot_edge_function_${name}\\{function="loop",version="[^"]*/loop\\.js"\\} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
      const kills = of("watchdog_kills_total");
      return kills >= 1 ? { kills, cpu: of("cpu_seconds_total"), text } : undefined;
    }, 20_000);
    expect(figures?.value.kills).toBeGreaterThanOrEqual(1);
    // The killed process spent its budget (cpu_ms) before the kill.
    expect(figures?.value.cpu).toBeGreaterThanOrEqual((LOOP_CPU_MS * 0.9) / 1000);
    expect(figures?.value.text).toMatch(/^parrot_edge_function_watchdog_kills_total\{function="redirect",version="[^"]*\/redirect\.js"\} 0$/m);
  });

  it("an access-log line for each answer a function made itself, with the function and its version; a pass-through is logged by the cache", async () => {
    await get("redirect.test", "/old/logged");
    await get("rewrite.test", "/logged-through-cache");
    const lines = await waitFor(async () => {
      const all = logs.join("").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
      return all.some((l) => l.path === "/old/logged") && all.some((l) => l.path === "/logged-through-cache") ? all : undefined;
    }, 10_000);
    const own = lines?.value.filter((l) => l.path === "/old/logged");
    expect(own).toEqual([expect.objectContaining({ host: "redirect.test", status: 301, cache_status: null, function: "redirect", function_version: expect.stringMatching(/\/redirect\.js$/) })]);
    // The rewrite function's answer came through the cache: its fetch() is the line (MISS), none of its own.
    expect(lines?.value.filter((l) => l.path === "/logged-through-cache")).toEqual([expect.objectContaining({ cache_status: "MISS" })]);
  });
});

describe("the trace: function → cache → origin", () => {
  const auth = { authorization: `Bearer ${TOKEN}` };
  const trace = async (host: string, path: string, headers: Record<string, string> = auth) => {
    const res = await get(host, `/.well-known/cdn/trace?url=${encodeURIComponent(path)}&run=1`, headers);
    expect(res.status, res.body).toBe(200);
    return res.body.split("\n").filter(Boolean);
  };
  const value = (lines: string[], key: string) => lines.filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));

  it("a pass-through: which function and version ran, its CPU time, its fetch() with the cache's steps (MISS: the origin, then HIT)", async () => {
    const first = await trace("rewrite.test", "/traced");
    expect(value(first, "function")).toEqual(["rewrite"]);
    expect(value(first, "function_ran")).toEqual([expect.stringMatching(/^rewrite \S*\/rewrite\.js$/)]);
    expect(value(first, "function_action")).toEqual(["passed to the cache"]);
    expect(Number(value(first, "function_cpu_ms")[0])).toBeGreaterThan(0);
    expect(value(first, "function_fetch")).toEqual(["GET http://rewrite.test/traced 200"]);
    expect(value(first, "cache")).toEqual(["MISS"]);
    expect(value(first, "origin")).toEqual([expect.stringMatching(/^200 in \d+ ms$/)]);
    expect(value(first, "status")).toEqual(["200"]);
    // The origin saw the function's request header: the trace ran the function for real.
    expect(originSeen.find((s) => s.path === "/traced")?.headers["x-from-function"]).toBe("rewrite");
    const second = await trace("rewrite.test", "/traced");
    expect([value(second, "cache"), value(second, "origin")]).toEqual([["HIT"], ["not asked"]]);
  });

  it("a redirect and an answer of the function's own: no fetch(), the cache never asked", async () => {
    const redirect = await trace("redirect.test", "/old/x");
    expect(value(redirect, "function_action")).toEqual(["redirected 301 https://www.redirect.test/new/x"]);
    expect(value(redirect, "cache")).toEqual([]);
    const own = await trace("geo.test", "/");
    expect(value(own, "function_action")).toEqual(["answered itself 200"]);
    expect(value(own, "function_fetch")).toEqual([]);
  });

  it('a function that throws with on_error = "cache": said, then the cache\'s own steps', async () => {
    const lines = await trace("throws-cache.test", "/trace-thrown");
    expect(value(lines, "function_action")).toEqual(["threw; on_error = cache: served by the cache below"]);
    expect([value(lines, "cache"), value(lines, "status")]).toEqual([["MISS"], ["200"]]);
  });

  it("the run needs the admin token; without run the trace names the function only; a client's own trace header does nothing", async () => {
    expect((await get("rewrite.test", "/.well-known/cdn/trace?url=/x&run=1")).status).toBe(401);
    const plain = (await get("rewrite.test", "/.well-known/cdn/trace?url=/x")).body.split("\n");
    expect(value(plain, "function")).toEqual(["rewrite"]);
    expect(value(plain, "function_action")).toEqual([]);
    const res = await get("rewrite.test", "/client-trace", { "x-parrot-trace": "1" });
    expect(res.headers["x-parrot-trace-function"]).toBeUndefined();
    expect(res.headers["x-parrot-trace-cache"]).toBeUndefined();
  });
});

describe("deploy, reload and roll back (npm run fn)", () => {
  const ROOT = resolve(import.meta.dirname, "../..");
  const fn = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, "scripts/fn.ts"), ...args, "--config", join(dir, "cdn.toml")], { cwd: ROOT, encoding: "utf8" });
  const country = async () => JSON.parse((await get("geo.test", "/", { "x-forwarded-for": "81.2.69.142" })).body) as Record<string, unknown>;

  it("a module that does not load in workerd is refused and nothing is deployed", () => {
    const bad = join(dir, "bad.js");
    writeFileSync(bad, 'export default { fetch() { return new Response("x") } };\nthrow new Error("top-level failure");\n');
    const out = fn("deploy", "--site", "geo", bad);
    expect(out.status, out.stderr).toBe(2);
    expect(out.stderr).toMatch(/does not load in workerd, nothing deployed/);
    expect(fn("list").stdout).toMatch(/^geo .*live: .*geo\.js \(bundled at start\)$/m);
  }, 60_000);

  it("deploy makes a new version current; after a reload the box serves it; rollback brings the previous one back", async () => {
    const v1 = join(dir, "geo-v1.js");
    const v2 = join(dir, "geo-v2.ts");
    writeFileSync(v1, 'export default { fetch(request) { return Response.json({ version: 1, country: request.cf.country }) } };\n');
    writeFileSync(v2, 'const v: number = 2;\nexport default { fetch(request: Request) { console.log("geo answers from", (request as any).cf.country); return Response.json({ version: v, country: (request as any).cf.country }) } };\n');
    for (const f of [v1, v2]) {
      const out = fn("deploy", "--site", "geo", f);
      expect(out.status, out.stderr).toBe(0);
    }
    expect(fn("list").stdout).toMatch(/live: v2\n {2}\s v1 .*geo-v1\.js\n {2}\* v2 .*geo-v2\.ts/);
    const geoPid = edge.functions!.running.find((r) => r.id === "geo")!.pid();
    expect(await edge.reloadFunctions(configTextUsed)).toEqual(["function geo now runs v2"]);
    // Its process starts again on the new files (the others keep running).
    const served2 = await waitFor(async () => ((await country()).version === 2 ? true : undefined), 20_000);
    expect(served2?.value).toBe(true);
    expect(await country()).toEqual({ version: 2, country: "GB" });
    // Its console output in the box's log names the function and the version that wrote it.
    const tagged = await waitFor(async () => (/^function geo v2: geo answers from GB$/m.test(logs.join("")) ? true : undefined), 10_000);
    expect(tagged?.value).toBe(true);
    expect(edge.functions!.running.find((r) => r.id === "geo")!.pid()).not.toBe(geoPid);
    const back = fn("rollback", "--site", "geo");
    expect(back.stdout).toContain("geo v1 is current");
    await edge.reloadFunctions(configTextUsed);
    const served1 = await waitFor(async () => ((await country()).version === 1 ? true : undefined), 20_000);
    expect(served1?.value).toBe(true);
  }, 90_000);
});

describe("local development (npm run fn -- dev | cf)", () => {
  it("fn dev runs the function under Miniflare with request.cf from the GeoIP data and the entry's vars and secrets, its fetch() sent to the edge", async () => {
    const dev = await startNodeScript(
      "scripts/fn.ts",
      ["dev", join(FIXTURES, "geo.js"), "--config", join(dir, "cdn.toml"), "--client-ip", "216.160.83.56", "--port", "0", "--edge", edge.url],
      /fn dev: \S+ at (\S+);/,
      60_000,
    );
    try {
      const body = (await (await fetch(dev.match[1]!)).json()) as Record<string, unknown>;
      expect(body).toMatchObject({ country: "US", city: "Milton", colo: "dev", greeting: "hello", secret: "only-geo-sees-this" });
    } finally {
      await dev.stop();
    }
    const passing = await startNodeScript(
      "scripts/fn.ts",
      ["dev", join(FIXTURES, "rewrite.js"), "--port", "0", "--edge", edge.url],
      /fn dev: \S+ at (\S+);/,
      60_000,
    );
    try {
      const res = await fetch(new URL("/dev-doc", passing.match[1]!));
      // Through the edge's cache: the edge answered (MISS, then stored), the origin saw the function's header.
      expect(res.headers.get("x-cache-status")).toBe("MISS");
      expect(res.headers.get("x-rewritten")).toBe("yes");
      expect(await res.text()).toBe("origin /dev-doc\n");
      expect(originSeen.find((s) => s.path === "/dev-doc")?.headers["x-from-function"]).toBe("rewrite");
    } finally {
      await passing.stop();
    }
  }, 120_000);

  it("fn cf writes request.cf for an address from the config's GeoIP files (what npm run dev hands to wrangler dev)", () => {
    const out = join(dir, "cf.json");
    const run = spawnSync(process.execPath, [resolve(import.meta.dirname, "../../scripts/fn.ts"), "cf", "--config", join(dir, "cdn.toml"), "--client-ip", "81.2.69.142", "--out", out], { encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(readFileSync(out, "utf8"))).toMatchObject({ colo: "dev", country: "GB", city: "London", continent: "EU" });
  }, 60_000);
});
