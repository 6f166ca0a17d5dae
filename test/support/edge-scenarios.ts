/**
 * The edge's behaviour scenarios, written once and run against each way the edge runs: inside Miniflare (the
 * workers project) and as a real HTTP server process (the e2e project). Each scenario uses its own paths, so no
 * scenario sees another's entries. Time-dependent ones use real seconds (max-age=1, then a 2.2 s wait).
 */
import { describe, expect, it } from "vitest";
import { pattern, type Script } from "./scripted-origin.ts";

export interface EdgeHarness {
  /** A request to the edge; `path` is relative to the edge's root. */
  edge(path: string, init?: RequestInit): Promise<Response>;
  /** Scripts the origin's answer for a path. */
  script(path: string, script: Script): Promise<void>;
  /** How many requests the origin got for a path. */
  hits(path: string): Promise<number>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let n = 0;
const unique = (name: string) => `/${name}-${Date.now().toString(36)}-${n++}`;

async function status(h: EdgeHarness, path: string, init?: RequestInit) {
  const res = await h.edge(path, init);
  const body = await res.text();
  return { res, body, xcs: res.headers.get("x-cache-status"), cs: res.headers.get("cache-status") ?? "" };
}

export function edgeScenarios(harness: () => EdgeHarness) {
  describe("edge scenarios", () => {
    it("MISS then HIT", async () => {
      const h = harness();
      const p = unique("hit");
      await h.script(p, { headers: { "cache-control": "max-age=60" }, body: "hello" });
      const a = await status(h, p);
      expect([a.xcs, a.body]).toEqual(["MISS", "hello"]);
      expect(a.cs).toMatch(/; fwd=uri-miss; stored$/);
      const b = await status(h, p);
      expect([b.xcs, b.body]).toEqual(["HIT", "hello"]);
      expect(b.res.headers.get("age")).toMatch(/^\d+$/);
      expect(await h.hits(p)).toBe(1);
    });

    it("EXPIRED after max-age, with fresh content from the origin", async () => {
      const h = harness();
      const p = unique("expired");
      await h.script(p, { headers: { "cache-control": "max-age=1" }, body: "v1" });
      await status(h, p);
      await sleep(2200);
      await h.script(p, { headers: { "cache-control": "max-age=60" }, body: "v2" });
      const r = await status(h, p);
      expect([r.xcs, r.body]).toEqual(["EXPIRED", "v2"]);
      expect((await status(h, p)).xcs).toBe("HIT");
    });

    it("REVALIDATED: a 304 refreshes the entry and updates its headers", async () => {
      const h = harness();
      const p = unique("reval");
      await h.script(p, { headers: { "cache-control": "max-age=1", etag: '"e1"', "x-rev": "1" }, body: "same" });
      await status(h, p);
      await sleep(2200);
      await h.script(p, { headers: { "cache-control": "max-age=60", etag: '"e1"', "x-rev": "2" }, body: "same" });
      const r = await status(h, p);
      expect([r.xcs, r.body, r.res.headers.get("x-rev")]).toEqual(["REVALIDATED", "same", "2"]);
      const hit = await status(h, p);
      expect([hit.xcs, hit.res.headers.get("x-rev")]).toEqual(["HIT", "2"]);
    });

    it("STALE when the origin is down, within stale-if-error", async () => {
      const h = harness();
      const p = unique("down");
      await h.script(p, { headers: { "cache-control": "max-age=1, stale-if-error=600" }, body: "kept" });
      await status(h, p);
      await sleep(2200);
      await h.script(p, { fail: "reset" });
      const r = await status(h, p);
      expect([r.xcs, r.body]).toEqual(["STALE", "kept"]);
      expect(r.cs).toContain("detail=stale-if-error");
      await h.script(p, { status: 503, body: "unavailable" });
      expect((await status(h, p)).body).toBe("kept");
    });

    it("STALE then UPDATING while one background refresh runs", async () => {
      const h = harness();
      const p = unique("swr");
      await h.script(p, { headers: { "cache-control": "max-age=1, stale-while-revalidate=600" }, body: "old" });
      await status(h, p);
      await sleep(2200);
      await h.script(p, { headers: { "cache-control": "max-age=60" }, body: "new", delayMs: 800 });
      const first = await status(h, p);
      const second = await status(h, p);
      expect([first.xcs, first.body]).toEqual(["STALE", "old"]);
      expect([second.xcs, second.body]).toEqual(["UPDATING", "old"]);
      await sleep(1500);
      const after = await status(h, p);
      expect([after.xcs, after.body]).toEqual(["HIT", "new"]);
      expect(await h.hits(p)).toBe(2);
    });

    it("BYPASS on a bypass rule (the ?nocache argument), response still stored", async () => {
      const h = harness();
      const p = unique("bypass");
      await h.script(p, { headers: { "cache-control": "max-age=60" }, body: "b" });
      const r = await status(h, `${p}?nocache=1`);
      expect(r.xcs).toBe("BYPASS");
      expect(r.cs).toContain("fwd=bypass");
      const post = await status(h, p, { method: "POST", body: "x" });
      expect(post.xcs).toBe("BYPASS");
    });

    it("keeps Vary variants apart", async () => {
      const h = harness();
      const p = unique("vary");
      await h.script(p, { headers: { "cache-control": "max-age=60", vary: "accept-language" }, body: "v" });
      const en = { headers: { "accept-language": "en" } };
      const fr = { headers: { "accept-language": "fr" } };
      expect((await status(h, p, en)).xcs).toBe("MISS");
      expect((await status(h, p, fr)).xcs).toBe("MISS");
      expect((await status(h, p, en)).xcs).toBe("HIT");
      expect((await status(h, p, fr)).xcs).toBe("HIT");
    });

    it("answers Range and HEAD from the stored response", async () => {
      const h = harness();
      const p = unique("range");
      await h.script(p, { headers: { "cache-control": "max-age=60" }, body: "0123456789" });
      const head = await status(h, p, { method: "HEAD" });
      expect([head.res.status, head.body, head.xcs]).toEqual([200, "", "MISS"]);
      const r = await status(h, p, { headers: { range: "bytes=2-5" } });
      expect([r.res.status, r.body, r.xcs]).toEqual([206, "2345", "HIT"]);
      expect(r.res.headers.get("content-range")).toBe("bytes 2-5/10");
      const bad = await status(h, p, { headers: { range: "bytes=20-" } });
      expect(bad.res.status).toBe(416);
      expect(await h.hits(p)).toBe(1);
    });

    it("answers a Range deep inside a large stored object with the right bytes", async () => {
      const h = harness();
      const p = unique("large");
      const size = 3 * 1024 * 1024 + 7;
      await h.script(p, { headers: { "cache-control": "max-age=60", etag: '"big"' }, size });
      expect((await status(h, p)).xcs).toBe("MISS");
      const res = await h.edge(p, { headers: { range: `bytes=${size - 1000}-${size - 11}` } });
      expect([res.status, res.headers.get("x-cache-status"), res.headers.get("content-range")]).toEqual([
        206,
        "HIT",
        `bytes ${size - 1000}-${size - 11}/${size}`,
      ]);
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(pattern(size).subarray(size - 1000, size - 10));
      expect(await h.hits(p)).toBe(1);
    });

    it("invalidates a stored URL after a successful POST to it", async () => {
      const h = harness();
      const p = unique("inval");
      await h.script(p, { headers: { "cache-control": "max-age=60" }, body: "x" });
      await status(h, p);
      expect((await status(h, p)).xcs).toBe("HIT");
      await status(h, p, { method: "POST", body: "change" });
      expect((await status(h, p)).xcs).toBe("MISS");
    });

    it("coalesces 200 concurrent misses into one origin request", async () => {
      const h = harness();
      const p = unique("coalesce");
      await h.script(p, { headers: { "cache-control": "max-age=60" }, body: "one", delayMs: 1500 }); // long enough for all 200 to arrive first
      const all = await Promise.all(Array.from({ length: 200 }, () => status(h, p)));
      expect(await h.hits(p)).toBe(1);
      expect(all.every((r) => r.body === "one")).toBe(true);
      expect(all.filter((r) => r.xcs === "MISS")).toHaveLength(1);
      expect(all.filter((r) => r.xcs === "HIT" && r.cs.includes("collapsed"))).toHaveLength(199);
    });
  });
}
