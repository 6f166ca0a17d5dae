/**
 * The cache engine's behaviour, state by state, with a fake clock: the engine runs in-process over a MemoryStore
 * and talks to a scripted origin through the real origin fetcher (headers, timeouts), no network.
 */
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import { beforeEach, describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { EdgeCache } from "./engine.ts";
import { originFetcher } from "./origin.ts";
import { HotTier } from "./hot-tier.ts";
import { MemoryStore } from "./store.ts";
import { pattern, ScriptedOrigin } from "../../test/support/scripted-origin.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");

function setup(extraToml = "") {
  let now = T0;
  const clock = { now: () => now, advance: (s: number) => void (now += s * 1000) };
  const origin = new ScriptedOrigin(clock.now);
  const config = parseConfig(`[edge]\nname = "t1"\norigin = "http://origin.test"\nlock_timeout_ms = 2000\n${extraToml}`);
  const store = new MemoryStore(clock.now);
  const pending: Promise<unknown>[] = [];
  const fetchImpl = async (input: Request | string, init?: RequestInit) => origin.handle(new Request(input, init));
  const cache = new EdgeCache({
    edge: config.edge!,
    rules: config.rules,
    store,
    origin: originFetcher(config.edge!, fetchImpl),
    now: clock.now,
  });
  const ctx = { waitUntil: (p: Promise<unknown>) => void pending.push(p), clientIp: "192.0.2.7" };
  async function get(path: string, headers: Record<string, string> = {}, method = "GET") {
    const res = await cache.handle(new Request(`http://www.example.org${path}`, { method, headers }), ctx);
    const body = await res.text();
    await settle();
    return { res, body, xcs: res.headers.get("x-cache-status"), cs: res.headers.get("cache-status") };
  }
  async function settle() {
    while (pending.length) await Promise.allSettled(pending.splice(0));
  }
  return { clock, origin, store, cache, ctx, get, settle };
}

describe("edge cache states", () => {
  let t: ReturnType<typeof setup>;
  beforeEach(() => {
    t = setup();
  });

  it("MISS then HIT, with Age growing on the clock", async () => {
    t.origin.set("/a", { headers: { "cache-control": "max-age=60" }, body: "hello" });
    const first = await t.get("/a");
    expect(first.xcs).toBe("MISS");
    expect(first.cs).toBe("t1; fwd=uri-miss; stored");
    expect(first.body).toBe("hello");
    t.clock.advance(10);
    const second = await t.get("/a");
    expect(second.xcs).toBe("HIT");
    expect(second.body).toBe("hello");
    expect(second.res.headers.get("age")).toBe("10");
    expect(second.cs).toBe("t1; hit; ttl=50");
    expect(t.origin.hitsOf("/a")).toBe(1);
  });

  it("EXPIRED when stale without validators or stale permission", async () => {
    t.origin.set("/e", { headers: { "cache-control": "max-age=5" }, body: "v1" });
    await t.get("/e");
    t.clock.advance(6);
    t.origin.set("/e", { headers: { "cache-control": "max-age=5" }, body: "v2" });
    const r = await t.get("/e");
    expect(r.xcs).toBe("EXPIRED");
    expect(r.body).toBe("v2");
    expect(r.cs).toBe("t1; fwd=stale; fwd-status=200; stored");
    expect((await t.get("/e")).xcs).toBe("HIT");
  });

  it("REVALIDATED on a 304, which updates the stored headers", async () => {
    t.origin.set("/r", { headers: { "cache-control": "max-age=5", etag: '"v1"', "x-version": "one" }, body: "body" });
    await t.get("/r");
    t.clock.advance(6);
    t.origin.set("/r", { headers: { "cache-control": "max-age=100", etag: '"v1"', "x-version": "two" }, body: "body" });
    const r = await t.get("/r");
    expect(r.xcs).toBe("REVALIDATED");
    expect(r.cs).toBe("t1; fwd=stale; fwd-status=304; stored");
    expect(r.body).toBe("body");
    expect(r.res.headers.get("x-version")).toBe("two");
    expect(t.origin.lastRequest("/r")?.["if-none-match"]).toBe('"v1"');
    t.clock.advance(50);
    const h = await t.get("/r");
    expect(h.xcs).toBe("HIT");
    expect(h.res.headers.get("x-version")).toBe("two");
  });

  it("STALE when the origin is down within stale-if-error, EXPIRED error past it", async () => {
    t.origin.set("/s", { headers: { "cache-control": "max-age=5, stale-if-error=60" }, body: "kept" });
    await t.get("/s");
    t.clock.advance(10);
    t.origin.set("/s", { fail: "reset" });
    const r = await t.get("/s");
    expect(r.xcs).toBe("STALE");
    expect(r.body).toBe("kept");
    expect(r.cs).toContain("detail=stale-if-error");
    t.origin.set("/s", { status: 503, body: "down" });
    expect((await t.get("/s")).xcs).toBe("STALE");
    t.clock.advance(60);
    const late = await t.get("/s");
    expect(late.xcs).toBe("EXPIRED");
    expect(late.res.status).toBe(503);
  });

  it("never serves stale past must-revalidate, proxy-revalidate or s-maxage", async () => {
    for (const cc of ["max-age=5, must-revalidate, stale-if-error=600", "s-maxage=5, stale-if-error=600, stale-while-revalidate=600", "max-age=5, proxy-revalidate, stale-while-revalidate=60"]) {
      const path = `/mr-${cc.length}`;
      t.origin.set(path, { headers: { "cache-control": cc }, body: "x" });
      await t.get(path);
      t.clock.advance(10);
      t.origin.set(path, { fail: "reset" });
      const r = await t.get(path);
      expect(r.res.status).toBe(502);
      expect(r.xcs).toBe("EXPIRED");
    }
  });

  it("STALE starts one background refresh; requests during it get UPDATING", async () => {
    t.origin.set("/w", { headers: { "cache-control": "max-age=5, stale-while-revalidate=30" }, body: "old" });
    await t.get("/w");
    t.clock.advance(8);
    t.origin.set("/w", { headers: { "cache-control": "max-age=5, stale-while-revalidate=30" }, body: "new", delayMs: 50 });
    const first = await t.cache.handle(new Request("http://www.example.org/w"), t.ctx);
    const second = await t.cache.handle(new Request("http://www.example.org/w"), t.ctx);
    expect(first.headers.get("x-cache-status")).toBe("STALE");
    expect(await first.text()).toBe("old");
    expect(second.headers.get("x-cache-status")).toBe("UPDATING");
    expect(second.headers.get("cache-status")).toBe("t1; hit; ttl=-3; detail=updating");
    await second.text();
    await t.settle();
    expect(t.origin.hitsOf("/w")).toBe(2);
    const after = await t.get("/w");
    expect(after.xcs).toBe("HIT");
    expect(after.body).toBe("new");
  });

  it("coalesces 200 concurrent misses into one origin request", async () => {
    t.origin.set("/c", { headers: { "cache-control": "max-age=60" }, body: "one", delayMs: 20 });
    const responses = await Promise.all(
      Array.from({ length: 200 }, () => t.cache.handle(new Request("http://www.example.org/c"), t.ctx)),
    );
    const bodies = await Promise.all(responses.map((r) => r.text()));
    await t.settle();
    expect(t.origin.hitsOf("/c")).toBe(1);
    expect(new Set(bodies)).toEqual(new Set(["one"]));
    const statuses = responses.map((r) => r.headers.get("x-cache-status"));
    expect(statuses.filter((s) => s === "MISS")).toHaveLength(1);
    expect(statuses.filter((s) => s === "HIT")).toHaveLength(199);
    expect(responses.filter((r) => r.headers.get("cache-status")!.includes("collapsed"))).toHaveLength(199);
  });

  it("coalesces requests for an expired entry instead of stampeding the origin", async () => {
    t.origin.set("/x", { headers: { "cache-control": "max-age=5" }, body: "a" });
    await t.get("/x");
    t.clock.advance(10);
    t.origin.set("/x", { headers: { "cache-control": "max-age=60" }, body: "b", delayMs: 20 });
    const rs = await Promise.all(Array.from({ length: 20 }, () => t.cache.handle(new Request("http://www.example.org/x"), t.ctx)));
    await Promise.all(rs.map((r) => r.text()));
    await t.settle();
    expect(t.origin.hitsOf("/x")).toBe(2);
  });

  it("BYPASS for a rule's bypass condition, and the response is still stored", async () => {
    t = setup(`[[rules]]\npath = "/**"\nbypass = { cookies = ["session"], args = ["nocache"] }`);
    t.origin.set("/b", { headers: { "cache-control": "max-age=60" }, body: "b" });
    const r = await t.get("/b", { cookie: "session=abc" });
    expect(r.xcs).toBe("BYPASS");
    expect(r.cs).toBe("t1; fwd=bypass; stored");
    expect((await t.get("/b", { cookie: "session=0" })).xcs).toBe("HIT");
    expect((await t.get("/b")).xcs).toBe("HIT");
  });

  it("keeps variants apart by Vary and never matches Vary: *", async () => {
    t.origin.set("/v", { headers: { "cache-control": "max-age=60", vary: "Accept-Language" }, body: "any" });
    expect((await t.get("/v", { "accept-language": "en" })).xcs).toBe("MISS");
    expect((await t.get("/v", { "accept-language": "en" })).xcs).toBe("HIT");
    const fr = await t.get("/v", { "accept-language": "fr" });
    expect(fr.xcs).toBe("MISS");
    expect(fr.cs).toContain("fwd=vary-miss");
    expect((await t.get("/v", { "accept-language": "fr" })).xcs).toBe("HIT");
    t.origin.set("/star", { headers: { "cache-control": "max-age=60", vary: "*" }, body: "s" });
    await t.get("/star");
    expect((await t.get("/star")).xcs).toBe("MISS");
  });

  it("answers Range from a stored full response: 206, multipart, 416", async () => {
    t.origin.set("/big", { headers: { "cache-control": "max-age=60", "content-type": "application/octet-stream" }, size: 1000 });
    await t.get("/big");
    const one = await t.cache.handle(new Request("http://www.example.org/big", { headers: { range: "bytes=100-199" } }), t.ctx);
    expect(one.status).toBe(206);
    expect(one.headers.get("content-range")).toBe("bytes 100-199/1000");
    expect(new Uint8Array(await one.arrayBuffer())).toEqual(pattern(1000).subarray(100, 200));
    const multi = await t.cache.handle(new Request("http://www.example.org/big", { headers: { range: "bytes=0-9,-10" } }), t.ctx);
    expect(multi.status).toBe(206);
    expect(multi.headers.get("content-type")).toMatch(/^multipart\/byteranges; boundary=/);
    expect(await multi.text()).toContain("Content-Range: bytes 990-999/1000");
    const bad = await t.cache.handle(new Request("http://www.example.org/big", { headers: { range: "bytes=5000-" } }), t.ctx);
    expect(bad.status).toBe(416);
    expect(bad.headers.get("content-range")).toBe("bytes */1000");
  });

  it("serves HEAD from a stored GET and fills the cache from a HEAD miss", async () => {
    t.origin.set("/h", { headers: { "cache-control": "max-age=60", "content-length": "4" }, body: "body" });
    const head = await t.get("/h", {}, "HEAD");
    expect(head.xcs).toBe("MISS");
    expect(head.body).toBe("");
    const get = await t.get("/h");
    expect(get.xcs).toBe("HIT");
    expect(get.body).toBe("body");
    expect(t.origin.lastRequest("/h")).toBeDefined();
  });

  it("answers client conditionals with 304 from the cache", async () => {
    t.origin.set("/c304", { headers: { "cache-control": "max-age=60", etag: '"abc"' }, body: "x" });
    await t.get("/c304");
    const r = await t.get("/c304", { "if-none-match": 'W/"abc"' });
    expect(r.res.status).toBe(304);
    expect(r.res.headers.get("etag")).toBe('"abc"');
    expect(r.xcs).toBe("HIT");
  });

  it("invalidates the URL, Location and Content-Location after a successful unsafe method", async () => {
    for (const p of ["/inv", "/other", "/third"]) {
      t.origin.set(p, { headers: { "cache-control": "max-age=60" }, body: p });
      await t.get(p);
    }
    t.origin.set("/inv", { status: 201, headers: { location: "/other", "content-location": "http://www.example.org/third" } });
    const post = await t.get("/inv", {}, "POST");
    expect(post.res.status).toBe(201);
    expect(post.xcs).toBe("BYPASS");
    expect(post.cs).toBe("t1; fwd=method");
    for (const p of ["/inv", "/other", "/third"]) {
      t.origin.set(p, { headers: { "cache-control": "max-age=60" }, body: p });
      expect((await t.get(p)).xcs).toBe("MISS");
    }
  });

  it("does not invalidate after a failed unsafe method", async () => {
    t.origin.set("/keep", { headers: { "cache-control": "max-age=60" }, body: "k" });
    await t.get("/keep");
    t.origin.set("/keep", { status: 500 });
    await t.get("/keep", {}, "DELETE");
    t.origin.set("/keep", { headers: { "cache-control": "max-age=60" }, body: "k" });
    expect((await t.get("/keep")).xcs).toBe("HIT");
  });

  it("honours request directives: no-cache, max-age=0, min-fresh, max-stale, only-if-cached", async () => {
    t.origin.set("/q", { headers: { "cache-control": "max-age=60", etag: '"q"' }, body: "q" });
    expect((await t.get("/q", { "cache-control": "only-if-cached" })).res.status).toBe(504);
    await t.get("/q");
    expect((await t.get("/q", { "cache-control": "no-cache" })).xcs).toBe("REVALIDATED");
    expect((await t.get("/q", { pragma: "no-cache" })).xcs).toBe("REVALIDATED");
    t.clock.advance(1);
    expect((await t.get("/q", { "cache-control": "max-age=0" })).xcs).toBe("REVALIDATED");
    t.clock.advance(30);
    expect((await t.get("/q", { "cache-control": "min-fresh=40" })).xcs).toBe("REVALIDATED");
    expect((await t.get("/q", { "cache-control": "only-if-cached" })).xcs).toBe("HIT");
    t.clock.advance(70);
    t.origin.set("/q", { fail: "reset" });
    expect((await t.get("/q", { "cache-control": "max-stale=20" })).xcs).toBe("STALE");
    expect((await t.get("/q", { "cache-control": "only-if-cached" })).res.status).toBe(504);
  });

  it("stores by the operator's rules: default TTL per status, forced TTL, min uses, query sorting", async () => {
    t = setup(`
[[rules]]
path = "/forced/**"
force_ttl = 100
[[rules]]
path = "/popular/**"
min_uses = 2
ttl = { "200" = 60 }
[[rules]]
path = "/**"
ttl = { "404" = 30 }
query = "sort"`);
    t.origin.set("/forced/x", { headers: { "cache-control": "max-age=1" }, body: "f" });
    await t.get("/forced/x");
    t.clock.advance(50);
    expect((await t.get("/forced/x")).xcs).toBe("HIT");
    t.origin.set("/popular/y", { body: "p" });
    expect((await t.get("/popular/y")).cs).toBe("t1; fwd=uri-miss");
    expect((await t.get("/popular/y")).cs).toBe("t1; fwd=uri-miss; stored");
    expect((await t.get("/popular/y")).xcs).toBe("HIT");
    t.origin.set("/missing", { status: 404, body: "no" });
    await t.get("/missing");
    expect((await t.get("/missing")).xcs).toBe("HIT");
    t.origin.set("/s?a=1&b=2", { headers: { "cache-control": "max-age=60" }, body: "s" });
    await t.get("/s?b=2&a=1");
    expect((await t.get("/s?a=1&b=2")).xcs).toBe("HIT");
  });

  it("applies the Set-Cookie policy (default: never store)", async () => {
    t.origin.set("/ck", { headers: { "cache-control": "max-age=60", "set-cookie": "id=1" }, body: "c" });
    const first = await t.get("/ck");
    expect(first.res.headers.get("set-cookie")).toBe("id=1");
    expect((await t.get("/ck")).xcs).toBe("MISS");
    t = setup(`set_cookie = "strip"`);
    t.origin.set("/ck", { headers: { "cache-control": "max-age=60", "set-cookie": "id=1" }, body: "c" });
    expect((await t.get("/ck")).res.headers.get("set-cookie")).toBe("id=1");
    const hit = await t.get("/ck");
    expect(hit.xcs).toBe("HIT");
    expect(hit.res.headers.get("set-cookie")).toBeNull();
  });

  it("prefers CDN-Cache-Control and does not forward it", async () => {
    t.origin.set("/cdn", { headers: { "cache-control": "no-store", "cdn-cache-control": "max-age=60" }, body: "c" });
    const r = await t.get("/cdn");
    expect(r.res.headers.get("cdn-cache-control")).toBeNull();
    expect(r.res.headers.get("cache-control")).toBe("no-store");
    expect((await t.get("/cdn")).xcs).toBe("HIT");
  });

  it("passes CDN-Cache-Control on to another tier (CDN-Loop) on a MISS, a HIT and a 304, never to a client", async () => {
    t.origin.set("/cdn-tier", { headers: { "cache-control": "no-store", "cdn-cache-control": "max-age=60", etag: '"t1"' }, body: "c" });
    const tier = { "cdn-loop": "edge-a" };
    const miss = await t.get("/cdn-tier", tier);
    expect([miss.xcs, miss.res.headers.get("cdn-cache-control")]).toEqual(["MISS", "max-age=60"]);
    const hit = await t.get("/cdn-tier", tier);
    expect([hit.xcs, hit.res.headers.get("cdn-cache-control")]).toEqual(["HIT", "max-age=60"]);
    const notModified = await t.get("/cdn-tier", { ...tier, "if-none-match": '"t1"' });
    expect([notModified.res.status, notModified.res.headers.get("cdn-cache-control")]).toEqual([304, "max-age=60"]);
    for (const client of [await t.get("/cdn-tier"), await t.get("/cdn-tier", { "if-none-match": '"t1"' })]) {
      expect(client.res.headers.get("cdn-cache-control")).toBeNull();
    }
  });

  it("an edge filling from a shield gets the shield's freshness from CDN-Cache-Control, not the origin's Cache-Control", async () => {
    // The shield is `t` (t1); the edge's upstream is the shield's cache itself (the site's host), on the same fake clock.
    const config = parseConfig(`[edge]\nname = "e1"\norigin = "http://www.example.org"\n`);
    const edge = new EdgeCache({
      edge: config.edge!,
      rules: config.rules,
      store: new MemoryStore(t.clock.now),
      origin: originFetcher(config.edge!, (input, init) => t.cache.handle(new Request(input, init), t.ctx)),
      now: t.clock.now,
    });
    const viaEdge = async (path: string) => {
      const res = await edge.handle(new Request(`http://www.example.org${path}`), t.ctx);
      await res.text();
      await t.settle();
      return res;
    };
    t.origin.set("/targeted", { headers: { "cache-control": "max-age=10", "cdn-cache-control": "max-age=600" }, body: "t" });
    await t.get("/targeted"); // at the shield
    t.clock.advance(100);
    const filled = await viaEdge("/targeted");
    expect(filled.headers.get("cache-status")).toBe("t1; hit; ttl=500, e1; fwd=uri-miss; stored");
    const hit = await viaEdge("/targeted");
    expect(hit.headers.get("cache-status")).toBe("t1; hit; ttl=500, e1; hit; ttl=500");
    expect([hit.headers.get("cdn-cache-control"), hit.headers.get("cache-control")]).toEqual([null, "max-age=10"]);
    expect(t.origin.hitsOf("/targeted")).toBe(1);
  });

  it("ignores a CDN-Cache-Control that is not a valid structured dictionary", async () => {
    t.origin.set("/cdn-bad", { headers: { "cache-control": "no-store", "cdn-cache-control": 'max-age="60"' }, body: "c" });
    await t.get("/cdn-bad");
    expect((await t.get("/cdn-bad")).xcs).toBe("MISS");
  });

  it("treats an Expires that is not a strict HTTP-date as already expired", async () => {
    t.origin.set("/exp", { headers: { expires: new Date(T0 + 3600_000).toUTCString().replace("GMT", "UTC") }, body: "e" });
    await t.get("/exp");
    expect((await t.get("/exp")).xcs).not.toBe("HIT");
    t.origin.set("/exp2", { headers: { expires: new Date(T0 + 3600_000).toUTCString() }, body: "e" });
    await t.get("/exp2");
    expect((await t.get("/exp2")).xcs).toBe("HIT");
  });

  it("does not store private, no-store, or Authorization responses without permission", async () => {
    t.origin.set("/p", { headers: { "cache-control": "private, max-age=60" }, body: "p" });
    t.origin.set("/ns", { headers: { "cache-control": "no-store, max-age=60" }, body: "n" });
    t.origin.set("/auth", { headers: { "cache-control": "max-age=60" }, body: "a" });
    t.origin.set("/authpub", { headers: { "cache-control": "public, max-age=60" }, body: "a" });
    for (const p of ["/p", "/ns"]) {
      await t.get(p);
      expect((await t.get(p)).xcs).toBe("MISS");
    }
    await t.get("/auth", { authorization: "Basic x" });
    expect((await t.get("/auth")).xcs).toBe("MISS");
    await t.get("/authpub", { authorization: "Basic x" });
    expect((await t.get("/authpub")).xcs).toBe("HIT");
  });

  it("revalidates no-cache responses every time and strips no-cache field names from stored copies", async () => {
    t.origin.set("/nc", { headers: { "cache-control": "no-cache", etag: '"n"' }, body: "n" });
    await t.get("/nc");
    expect((await t.get("/nc")).xcs).toBe("REVALIDATED");
    t.origin.set("/ncf", { headers: { "cache-control": 'max-age=60, no-cache="x-secret"', "x-secret": "s" }, body: "f" });
    expect((await t.get("/ncf")).res.headers.get("x-secret")).toBe("s");
    const hit = await t.get("/ncf");
    expect(hit.xcs).toBe("HIT");
    expect(hit.res.headers.get("x-secret")).toBeNull();
  });

  it("passes redirects through, sets forwarding headers and drops hop-by-hop ones", async () => {
    t.origin.set("/go", { status: 301, headers: { location: "/there", "cache-control": "max-age=60", connection: "x-hop", "x-hop": "1", "keep-alive": "timeout=5" } });
    const r = await t.get("/go", { "x-forwarded-for": "6.6.6.6", "x-forwarded-host": "evil.example" });
    expect(r.res.status).toBe(301);
    expect(r.res.headers.get("location")).toBe("/there");
    expect(r.res.headers.get("x-hop")).toBeNull();
    expect(r.res.headers.get("keep-alive")).toBeNull();
    expect(r.res.headers.get("via")).toBe("1.1 t1");
    const seen = t.origin.lastRequest("/go")!;
    expect(seen["x-forwarded-for"]).toBe("192.0.2.7");
    expect(seen["x-forwarded-host"]).toBe("www.example.org");
    expect(seen["x-forwarded-proto"]).toBe("http");
    expect(seen["via"]).toBe("1.1 t1");
  });

  it("answers 504 when the origin is slower than origin_timeout_ms", async () => {
    t = setup(`origin_timeout_ms = 30`);
    t.origin.set("/slow", { delayMs: 200, body: "late" });
    const r = await t.get("/slow");
    expect(r.res.status).toBe(504);
    expect(r.xcs).toBe("MISS");
  });

  it("appends to an upstream Cache-Status instead of replacing it", async () => {
    t.origin.set("/up", { headers: { "cache-control": "max-age=60", "cache-status": "origin-cache; hit" }, body: "u" });
    expect((await t.get("/up")).cs).toBe("origin-cache; hit, t1; fwd=uri-miss; stored");
  });
});

describe("purge", () => {
  async function stored(t: ReturnType<typeof setup>, path: string, headers: Record<string, string> = {}) {
    t.origin.set(path, { headers: { "cache-control": "max-age=600", etag: `"${path}"`, ...headers }, body: path });
    await t.get(path);
    expect((await t.get(path)).xcs).toBe("HIT");
  }

  it("hard-purges a URL with all its variants", async () => {
    const t = setup();
    await stored(t, "/p/a", { vary: "accept-language" });
    await t.get("/p/a", { "accept-language": "fr" });
    t.clock.advance(1);
    await t.cache.purge({ urls: ["http://www.example.org/p/a"] });
    expect((await t.get("/p/a")).xcs).toBe("MISS");
    expect((await t.get("/p/a", { "accept-language": "fr" })).xcs).toBe("MISS");
  });

  it("soft-purges: the entry turns stale and the next request revalidates", async () => {
    const t = setup();
    await stored(t, "/p/soft");
    t.clock.advance(1);
    await t.cache.purge({ urls: ["http://www.example.org/p/soft"], soft: true });
    expect((await t.get("/p/soft")).xcs).toBe("REVALIDATED");
    expect((await t.get("/p/soft")).xcs).toBe("HIT");
  });

  it("purges by prefix, tag, host and everything, leaving the rest", async () => {
    const t = setup();
    for (const p of ["/img/a", "/img/b", "/css/c"]) await stored(t, p);
    await stored(t, "/tagged", { "cache-tag": "news, front" });
    t.clock.advance(1);
    await t.cache.purge({ prefixes: ["http://www.example.org/img/"] });
    expect((await t.get("/img/a")).xcs).toBe("MISS");
    expect((await t.get("/css/c")).xcs).toBe("HIT");
    await t.cache.purge({ tags: ["front"] });
    expect((await t.get("/tagged")).xcs).toBe("MISS");
    expect((await t.get("/css/c")).xcs).toBe("HIT");
    await t.cache.purge({ hosts: ["other.example.org"] });
    expect((await t.get("/css/c")).xcs).toBe("HIT");
    await t.cache.purge({ hosts: ["www.example.org"] });
    expect((await t.get("/css/c")).xcs).toBe("MISS");
    t.clock.advance(1);
    await t.cache.purge({ all: true });
    expect((await t.get("/css/c")).xcs).toBe("MISS");
    // Entries stored after a purge are not affected by it.
    expect((await t.get("/css/c")).xcs).toBe("HIT");
  });

  it("keeps purges across a restart: a new engine over the same store still honours them", async () => {
    const t = setup();
    await stored(t, "/r/x");
    t.clock.advance(1);
    await t.cache.purge({ prefixes: ["http://www.example.org/r/"], soft: true });
    const config = parseConfig(`[edge]\nname = "t1"\norigin = "http://origin.test"`);
    const restarted = new EdgeCache({
      edge: config.edge!,
      rules: [],
      store: t.store,
      origin: originFetcher(config.edge!, async (input, init) => t.origin.handle(new Request(input, init))),
      now: t.clock.now,
    });
    const res = await restarted.handle(new Request("http://www.example.org/r/x"), t.ctx);
    expect(res.headers.get("x-cache-status")).toBe("REVALIDATED");
  });
});

describe("ranges of large objects", () => {
  it("lets the store read a single range of a large stored body instead of skipping through it", async () => {
    const t = setup();
    const size = 2 * 1024 * 1024;
    t.origin.set("/iso", { headers: { "cache-control": "max-age=600", etag: '"iso"' }, size });
    await t.get("/iso");
    let ranged = 0;
    const getRange = t.store.getRange.bind(t.store);
    t.store.getRange = async (key, start, end) => {
      ranged++;
      return getRange(key, start, end);
    };
    const res = await t.cache.handle(new Request("http://www.example.org/iso", { headers: { range: "bytes=2000000-2000099" } }), t.ctx);
    expect([res.status, res.headers.get("content-range")]).toEqual([206, `bytes 2000000-2000099/${size}`]);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(pattern(size).subarray(2_000_000, 2_000_100));
    expect(ranged).toBe(1);
  });
});

describe("compression at the edge", () => {
  const html = "<!doctype html><p>" + "a parrot says hello. ".repeat(400) + "</p>\n";
  const raw = async (t: ReturnType<typeof setup>, path: string, headers: Record<string, string> = {}) => {
    const res = await t.cache.handle(new Request(`http://www.example.org${path}`, { headers }), t.ctx);
    const bytes = new Uint8Array(await res.arrayBuffer());
    await t.settle();
    return { res, bytes, xcs: res.headers.get("x-cache-status"), ce: res.headers.get("content-encoding") };
  };

  it("stores a br variant for br clients, gzip for gzip-only ones, identity for the rest; a HIT never compresses again", async () => {
    const t = setup();
    t.origin.set("/page", { headers: { "cache-control": "max-age=60", "content-type": "text/html; charset=utf-8", etag: '"p1"' }, body: html });
    const br = await raw(t, "/page", { "accept-encoding": "gzip, deflate, br, zstd" });
    expect([br.xcs, br.ce, br.res.headers.get("vary")]).toEqual(["MISS", "br", "Accept-Encoding"]);
    expect(new TextDecoder().decode(brotliDecompressSync(br.bytes))).toBe(html);
    expect(Number(br.res.headers.get("content-length"))).toBe(br.bytes.byteLength);
    expect(br.bytes.byteLength).toBeLessThan(html.length / 10);
    expect(br.res.headers.get("etag")).toBe('W/"p1"'); // another representation: a weak validator
    const again = await raw(t, "/page", { "accept-encoding": "br, gzip" });
    expect([again.xcs, again.ce]).toEqual(["HIT", "br"]);
    expect(again.bytes).toEqual(br.bytes); // the stored bytes, not compressed anew
    const gz = await raw(t, "/page", { "accept-encoding": "gzip" });
    expect([gz.xcs, gz.ce]).toEqual(["MISS", "gzip"]);
    expect(new TextDecoder().decode(gunzipSync(gz.bytes))).toBe(html);
    const plain = await raw(t, "/page");
    expect([plain.xcs, plain.ce, new TextDecoder().decode(plain.bytes)]).toEqual(["MISS", null, html]);
    expect((await raw(t, "/page", { "accept-encoding": "identity" })).xcs).toBe("HIT");
    expect(t.origin.hitsOf("/page")).toBe(3); // one origin fetch per set of acceptable codings
  });

  it("answers a Range from the stored compressed variant with its own bytes", async () => {
    const t = setup();
    t.origin.set("/r", { headers: { "cache-control": "max-age=60", "content-type": "text/plain" }, body: html });
    const whole = await raw(t, "/r", { "accept-encoding": "gzip" });
    const part = await raw(t, "/r", { "accept-encoding": "gzip", range: "bytes=10-19" });
    expect([part.res.status, part.ce, part.res.headers.get("content-range")]).toEqual([206, "gzip", `bytes 10-19/${whole.bytes.byteLength}`]);
    expect(part.bytes).toEqual(whole.bytes.subarray(10, 20));
  });

  it("leaves origin-compressed bodies, images, no-transform and small bodies as they are", async () => {
    const t = setup();
    const gzipped = gzipSync(new TextEncoder().encode(html));
    t.origin.set("/pre", { headers: { "cache-control": "max-age=60", "content-type": "text/html", "content-encoding": "gzip", "content-length": String(gzipped.byteLength) }, body: new TextDecoder("latin1").decode(gzipped) });
    t.origin.set("/img.png", { headers: { "cache-control": "max-age=60", "content-type": "image/png" }, size: 5000 });
    t.origin.set("/nt", { headers: { "cache-control": "max-age=60, no-transform", "content-type": "text/html" }, body: html });
    t.origin.set("/small", { headers: { "cache-control": "max-age=60", "content-type": "text/html" }, body: "<p>hi</p>" });
    for (const p of ["/img.png", "/nt", "/small"]) {
      const r = await raw(t, p, { "accept-encoding": "br, gzip" });
      expect([p, r.ce]).toEqual([p, null]);
    }
    expect((await raw(t, "/img.png", { "accept-encoding": "br" })).res.headers.get("vary")).toBeNull();
    const pre = await raw(t, "/pre", { "accept-encoding": "gzip" });
    expect([pre.ce, pre.res.headers.get("content-length")]).toEqual(["gzip", String(gzipped.byteLength)]);
  });
});

describe("client failures", () => {
  it("an upload that breaks midway is answered 400 (the client's fault), not 502, and the origin stays in service", async () => {
    const config = parseConfig(`[edge]\nname = "t1"\norigin = "http://origin.test"\norigin_max_fails = 1\n`);
    let originCalls = 0;
    const fetchImpl = async (input: Request | string, init?: RequestInit) => {
      originCalls++;
      const req = new Request(input, init);
      if (req.method === "POST") await req.arrayBuffer(); // reads the upload, which fails midway
      return new Response("ok", { headers: { "cache-control": "no-store" } });
    };
    const cache = new EdgeCache({ edge: config.edge!, rules: config.rules, store: new MemoryStore(), origin: originFetcher(config.edge!, fetchImpl) });
    const ctx = { waitUntil: () => undefined, clientIp: "192.0.2.7" };
    for (let i = 0; i < 3; i++) {
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent++ < 2) c.enqueue(new Uint8Array(10));
          else c.error(new TypeError("client went away"));
        },
      });
      const res = await cache.handle(new Request("http://www.example.org/upload", { method: "POST", body, duplex: "half" } as RequestInit), ctx);
      expect(res.status).toBe(400);
      expect(await res.text()).toBe("400 the request body could not be read\n");
      expect(res.headers.get("cache-status")).toContain("detail=client-body");
    }
    // The only origin (max_fails = 1) was not marked failed: a GET still reaches it.
    const after = await cache.handle(new Request("http://www.example.org/after"), ctx);
    expect([after.status, await after.text()]).toEqual([200, "ok"]);
    expect(originCalls).toBe(4);
  });
});

describe("memory-tier HITs", () => {
  it("a held copy's answer headers, made once a second for plain GETs, are those every other path gives it", async () => {
    let now = T0;
    const origin = new ScriptedOrigin(() => now);
    const config = parseConfig(`[edge]\nname = "t1"\norigin = "http://origin.test"\n`);
    const store = new HotTier(new MemoryStore(() => now), { maxBytes: 1 << 20, maxObjectBytes: 1 << 16, now: () => now });
    const fetchImpl = async (input: Request | string, init?: RequestInit) => origin.handle(new Request(input, init));
    const cache = new EdgeCache({ edge: config.edge!, rules: config.rules, store, origin: originFetcher(config.edge!, fetchImpl), now: () => now });
    const pending: Promise<unknown>[] = [];
    const ctx = { waitUntil: (p: Promise<unknown>) => void pending.push(p) };
    const get = async (headers: Record<string, string> = {}) => {
      const res = await cache.handle(new Request("http://www.example.org/held", { headers }), ctx);
      const body = await res.text();
      while (pending.length) await Promise.allSettled(pending.splice(0));
      return { status: res.status, body, headers: [...res.headers] };
    };
    origin.set("/held", {
      headers: { "cache-control": "max-age=60", etag: '"e1"', "content-type": "application/octet-stream", via: "1.1 upstream" },
      body: "held bytes",
    });
    expect((await get()).headers).toContainEqual(["x-cache-status", "MISS"]);
    now += 2_000;
    const plain = await get(); // made here
    const again = await get(); // reused
    // A conditional that does not match: the generic path, the same headers.
    const generic = await get({ "if-none-match": '"other"' });
    expect(plain).toEqual(again);
    expect(generic).toEqual(plain);
    expect(plain.headers).toEqual(
      expect.arrayContaining([["age", "2"], ["accept-ranges", "bytes"], ["via", "1.1 upstream, 1.1 t1"], ["x-cache-status", "HIT"], ["cache-status", "t1; hit; ttl=58"]]),
    );
    now += 5_000;
    const later = await get();
    expect(later.headers).toEqual(expect.arrayContaining([["age", "7"], ["cache-status", "t1; hit; ttl=53"]]));
    const part = await get({ range: "bytes=0-3" });
    expect([part.status, part.body]).toEqual([206, "held"]);
    expect((await get({ "if-none-match": '"e1"' })).status).toBe(304);
  });
});
