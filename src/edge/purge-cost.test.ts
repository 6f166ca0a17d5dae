/**
 * What one purge batch of the control agent costs the box's store: a bounded number of calls before it is answered,
 * whatever its size (the agent applies thousands of purges per batch), also on a box with several processes (which
 * hear of the log's stores from the store's answers).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../config/config.ts";
import { PURGE_LOG_KEY } from "../contracts/store.ts";
import { EdgeCache } from "./engine.ts";
import { StoreLogSequence } from "./shared-log.ts";
import { MemoryStore, type EntryStore } from "./store.ts";

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

function setup(opts: { otherProcesses?: boolean; store?: CountingStore; view?: EntryStore; logSequence?: StoreLogSequence } = {}) {
  const config = parseConfig('[edge]\nname = "e1"\norigin = "http://origin.test"');
  const store = opts.store ?? new CountingStore();
  let version = 1;
  const cache = new EdgeCache({
    edge: config.edge!,
    rules: config.rules,
    store: opts.view ?? store,
    peers: opts.otherProcesses ? { publish: async () => undefined, poll: async () => undefined } : undefined,
    logSequence: opts.logSequence,
    origin: async (req) => new Response(`body of ${new URL(req.url).pathname} v${version}`, { headers: { "cache-control": "max-age=600", etag: `"v${version}"` } }),
  });
  const ctx = { waitUntil: () => undefined, clientIp: "192.0.2.7" };
  const get = async (path: string) => (await answer(path)).xcs;
  const answer = async (path: string) => {
    const res = await cache.handle(new Request(`http://www.example.org${path}`), ctx);
    return { body: await res.text(), xcs: res.headers.get("x-cache-status") };
  };
  return { cache, store, get, answer, newVersion: () => version++ };
}

/**
 * The box's store as the disk store answers an edge process: every read carries the purge log's sequence (how many
 * stores of the log it holds so far), which the process's StoreLogSequence hears (CacheApiStore does this on workerd).
 */
function sequencedStore() {
  const store = new CountingStore();
  let logStores = 0;
  const state = { logUnreadable: false };
  const view = (sequence: StoreLogSequence): EntryStore => ({
    async get(key) {
      if (key === PURGE_LOG_KEY && state.logUnreadable) throw new Error("store away");
      const found = await store.get(key);
      sequence.see(`store-1.${logStores}`);
      return found;
    },
    async put(key, meta, body, ttl) {
      await store.put(key, meta, body, ttl);
      if (key === PURGE_LOG_KEY) logStores++;
    },
    delete: (key) => store.delete(key),
  });
  return { store, view, state };
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

  describe("on a box with several processes that hear the log's sequence from the store", () => {
    // No second passes: a process reads the log only when an answer of the store tells it to.
    beforeEach(() => void vi.useFakeTimers({ toFake: ["Date"], now: Date.parse("2026-01-01T00:00:00Z") }));
    afterEach(() => void vi.useRealTimers());

    it("is three store calls for 1,000 URLs, and the other process never serves a purged entry after the answer", async () => {
      const { store, view } = sequencedStore();
      const [seqA, seqB] = [new StoreLogSequence(), new StoreLogSequence()];
      const a = setup({ otherProcesses: true, store, view: view(seqA), logSequence: seqA });
      const b = setup({ otherProcesses: true, store, view: view(seqB), logSequence: seqB });
      expect((await b.answer("/b/3")).xcs).toBe("MISS");
      expect(await b.answer("/b/3")).toEqual({ body: "body of /b/3 v1", xcs: "HIT" });
      b.newVersion();
      vi.setSystemTime(Date.now() + 10); // the purge comes after the store (well within the second)
      store.calls = 0;
      await a.cache.purge({ urls: urls(1000) }, { mark: { stream: "S", seq: 1 }, logOnly: true });
      expect(store.calls).toBe(3); // read the log, write it, read it back: no get and delete per URL
      expect(await store.get("www.example.org/b/3")).not.toBeNull();
      // Process B's copy of the log is older; the entry's read told it so: it reads the log before it judges.
      expect(await b.answer("/b/3")).toEqual({ body: "body of /b/3 v2", xcs: "MISS" });
      expect(await b.answer("/b/3")).toEqual({ body: "body of /b/3 v2", xcs: "HIT" });
    });
  });

  describe("on a box with several processes, when the log cannot be read after a store answer told of a newer one", () => {
    beforeEach(() => void vi.useFakeTimers({ toFake: ["Date"], now: Date.parse("2026-01-01T00:00:00Z") }));
    afterEach(() => void vi.useRealTimers());

    it("the entry counts as not stored: the origin answers, never the copy the purge may have removed", async () => {
      const { store, view, state } = sequencedStore();
      const [seqA, seqB] = [new StoreLogSequence(), new StoreLogSequence()];
      const a = setup({ otherProcesses: true, store, view: view(seqA), logSequence: seqA });
      const b = setup({ otherProcesses: true, store, view: view(seqB), logSequence: seqB });
      await b.answer("/b/3");
      expect((await b.answer("/b/3")).xcs).toBe("HIT");
      b.newVersion();
      vi.setSystemTime(Date.now() + 10);
      await a.cache.purge({ urls: urls(1) }, { mark: { stream: "S", seq: 1 }, logOnly: true });
      state.logUnreadable = true;
      expect((await b.answer("/b/3")).body).toBe("body of /b/3 v2");
    });
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
