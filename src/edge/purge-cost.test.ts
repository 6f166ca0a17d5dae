/**
 * What one purge batch of the control agent costs the box's store: a bounded number of calls before it is answered,
 * whatever its size (the agent applies thousands of purges per batch); the deletes of hard-purged entries come after.
 */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { EdgeCache } from "./engine.ts";
import { MemoryStore } from "./store.ts";

/** A MemoryStore that counts the calls made to it. */
class CountingStore extends MemoryStore {
  calls = 0;
  override get(key: string) {
    this.calls++;
    return super.get(key);
  }
  override put(...args: Parameters<MemoryStore["put"]>) {
    this.calls++;
    return super.put(...args);
  }
  override delete(key: string) {
    this.calls++;
    return super.delete(key);
  }
}

function setup(opts: { otherProcesses?: boolean } = {}) {
  const config = parseConfig('[edge]\nname = "e1"\norigin = "http://origin.test"');
  const store = new CountingStore();
  const cache = new EdgeCache({
    edge: config.edge!,
    rules: config.rules,
    store,
    peers: opts.otherProcesses ? { publish: async () => undefined, poll: async () => undefined } : undefined,
    origin: async (req) => new Response(`body of ${new URL(req.url).pathname}`, { headers: { "cache-control": "max-age=600", etag: '"v1"' } }),
  });
  const ctx = { waitUntil: () => undefined, clientIp: "192.0.2.7" };
  const get = async (path: string) => {
    const res = await cache.handle(new Request(`http://www.example.org${path}`), ctx);
    await res.text();
    return res.headers.get("x-cache-status");
  };
  return { cache, store, get };
}

const urls = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `http://www.example.org/b/${from + i}`);

describe("a control batch's cost", () => {
  it("is the same three store calls for 1 URL and for 1,000 (with 10,000 in the log already); the entries stay, never served", async () => {
    const { cache, store, get } = setup();
    for (const i of [3, 999]) {
      await get(`/b/${i}`);
      expect(await get(`/b/${i}`)).toBe("HIT");
    }
    let seq = 0;
    const batch = async (list: string[], soft = false) => {
      store.calls = 0;
      await cache.purge({ urls: list, ...(soft ? { soft } : {}) }, { mark: { stream: "S", seq: ++seq }, logOnly: true });
      return store.calls;
    };
    for (let i = 0; i < 10; i++) await batch(urls(1000, 10_000 + i * 1000)); // a full log: its bound is 10,000 URLs
    const one = await batch(urls(1));
    const thousand = await batch(urls(1000));
    const soft = await batch(urls(1000, 1000), true);
    // Read the log, write it, read it back; the old code made a get and a delete per URL (2,003 calls for 1,000).
    expect([one, thousand, soft]).toEqual([3, 3, 3]);
    expect(await store.get("www.example.org/b/999")).not.toBeNull();
    expect(await get("/b/999")).toBe("MISS");
    expect(await get("/b/3")).toBe("MISS");
  });

  it("on a box with several processes still deletes hard-purged entries (the others read the log up to a second late)", async () => {
    const { cache, store, get } = setup({ otherProcesses: true });
    await get("/b/3");
    await cache.purge({ urls: urls(10) }, { mark: { stream: "S", seq: 1 }, logOnly: true });
    expect(await store.get("www.example.org/b/3")).toBeNull();
  });

  it("keeps the log bounded: 10,000 URL records, the older ones as a soft floor", async () => {
    const { cache, store } = setup();
    for (let i = 0; i < 12; i++) await cache.purge({ urls: urls(1000, i * 1000) }, { mark: { stream: "S", seq: i + 1 }, logOnly: true });
    const log = JSON.parse(await new Response((await store.get("\u0001purge-log"))!.body).text());
    expect(Object.keys(log.urls)).toHaveLength(10_000);
    expect(log.floor).toBeGreaterThan(0);
    expect(cache.purgeLogBytes).toBeLessThan(600_000);
  });
});
