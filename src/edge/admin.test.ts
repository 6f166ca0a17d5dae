/**
 * The edge's operator surface with a control plane and the PURGE method, through the whole app (Hono routes, the
 * engine over a MemoryStore, a scripted origin, a fake control agent), no network.
 */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { createEdgeApp } from "./app.ts";
import { MemoryStore } from "./store.ts";
import { ScriptedOrigin } from "../../test/support/scripted-origin.ts";

const TOKEN = "unit-admin-token-0123456789";
const BOOT = "1767225600000-00112233445566aa";

interface SetupOptions {
  control?: (req: Request) => Promise<Response>;
  bootId?: string;
  now?: number;
  /** Another app's store: a restart of the box. */
  store?: MemoryStore;
  /** What the fake agent's GET /status says of the box's lease (default: trusted for ever). */
  lease?: () => object;
}

function setup(extraToml = "", opts: SetupOptions = {}) {
  let now = opts.now ?? Date.parse("2026-01-01T01:00:00Z");
  const origin = new ScriptedOrigin(() => now);
  const config = parseConfig(`[edge]\nname = "e1"\norigin = "http://origin.test"\n${extraToml}\n[admin]\ntoken = "${TOKEN}"\n`);
  const store = opts.store ?? new MemoryStore(() => now);
  const forwarded: { path: string; body: unknown }[] = [];
  const app = createEdgeApp({
    config,
    store,
    now: () => now,
    fetch: async (input, init) => origin.handle(new Request(input, init)),
    log: () => undefined,
    bootId: opts.bootId,
    control: opts.control
      ? {
          fetch: async (req) => {
            if (new URL(req.url).pathname === "/status") {
              return Response.json({ lease: opts.lease?.() ?? { state: "current", trustedUntil: Number.MAX_SAFE_INTEGER, confirmedAt: 1, lastContact: 1, lag: 0 } });
            }
            forwarded.push({ path: new URL(req.url).pathname, body: await req.clone().json() });
            return opts.control!(req);
          },
        }
      : undefined,
  });
  const pending: Promise<unknown>[] = [];
  const ctx = { waitUntil: (p: Promise<unknown>) => void pending.push(p), passThroughOnException() {}, props: {} };
  async function call(path: string, init: RequestInit = {}) {
    const res = await app.fetch(new Request(`http://www.example.org${path}`, init), {}, ctx as unknown as ExecutionContext);
    const text = await res.text();
    while (pending.length) await Promise.allSettled(pending.splice(0));
    return { status: res.status, text, xcs: res.headers.get("x-cache-status") };
  }
  const auth = { authorization: `Bearer ${TOKEN}` };
  return { origin, store, call, auth, forwarded, now: () => now, advance: (s: number) => void (now += s * 1000) };
}

/** The fake control agent's answer to every call. */
const agentAnswer = (status: number, body: object) => async () => new Response(JSON.stringify(body), { status });

async function stored(t: ReturnType<typeof setup>, path: string, version = "v1") {
  t.origin.set(path, { headers: { "cache-control": "max-age=600", etag: `"${version}"` }, body: `${path} ${version}` });
  await t.call(path);
  expect((await t.call(path)).xcs).toBe("HIT");
  t.advance(1);
}

describe("PURGE <url>", () => {
  it("without a valid token: 401, never reaches the origin, evicts nothing", async () => {
    const t = setup();
    await stored(t, "/p");
    expect((await t.call("/p", { method: "PURGE" })).status).toBe(401);
    expect((await t.call("/p", { method: "PURGE", headers: { authorization: "Bearer wrong-token-wrong-token" } })).status).toBe(401);
    expect(t.origin.hitsOf("/p")).toBe(1);
    expect((await t.call("/p")).xcs).toBe("HIT");
  });

  it("answers 403 when no admin token is configured", async () => {
    const t = setup();
    const app = createEdgeApp({ config: parseConfig('[edge]\norigin = "http://origin.test"'), store: new MemoryStore(), log: () => undefined });
    const res = await app.fetch(new Request("http://www.example.org/p", { method: "PURGE" }), {}, { waitUntil() {} } as never);
    expect(res.status).toBe(403);
    expect(t.origin.hitsOf("/p")).toBe(0);
  });

  it("with the token purges the URL (every variant); Fastly-Soft-Purge: 1 makes it soft", async () => {
    const t = setup();
    await stored(t, "/p");
    const res = await t.call("/p", { method: "PURGE", headers: t.auth });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ results: [{ edge: "e1", ok: true, stored: 1 }] });
    expect((await t.call("/p")).xcs).toBe("MISS");
    t.advance(1);
    expect((await t.call("/p", { method: "PURGE", headers: { ...t.auth, "fastly-soft-purge": "1" } })).status).toBe(200);
    expect((await t.call("/p")).xcs).toBe("REVALIDATED");
    expect(t.origin.hitsOf("/p")).toBe(2 + 0 + 1); // MISS, MISS after the purge, then one conditional request
  });
});

describe("operator POST bodies", () => {
  it("a body that is not JSON: 400 at every endpoint that reads one, nothing applied", async () => {
    const t = setup();
    for (const path of ["purge", "drain", "control", "anycast"]) {
      const res = await t.call(`/.well-known/cdn/${path}`, { method: "POST", headers: t.auth, body: "{not json" });
      expect([path, res.status, JSON.parse(res.text)]).toEqual([path, 400, { error: "the body must be JSON" }]);
    }
    expect(JSON.parse((await t.call("/.well-known/cdn/control", { headers: t.auth })).text).mark).toBeNull();
  });
});

describe("invalidate_on_unsafe", () => {
  it("a successful POST evicts the URL by default (RFC 9111 §4.4)", async () => {
    const t = setup();
    await stored(t, "/doc");
    t.origin.set("/doc", { status: 200, headers: { "cache-control": "max-age=600" }, body: "changed" });
    await t.call("/doc", { method: "POST", body: "x" });
    expect((await t.call("/doc")).xcs).toBe("MISS");
  });

  it("off: unsafe methods pass through and evict nothing", async () => {
    const t = setup("invalidate_on_unsafe = false");
    await stored(t, "/doc");
    expect((await t.call("/doc", { method: "DELETE" })).xcs).toBe("BYPASS");
    expect((await t.call("/doc")).xcs).toBe("HIT");
  });
});

describe("with [control]", () => {
  const CONTROL = '[control]\nservers = ["nats://127.0.0.1:4222"]';

  it("hands purges (POST and PURGE) to the control agent instead of purging or fanning out itself", async () => {
    const answer = { stored: true, stream: "S", seq: 4, parts: 1, applied: ["e1"], pending: [{ edge: "e2", detail: "stopped" }] };
    const t = setup(`${CONTROL}\n[[edges]]\nname = "e2"\nurl = "http://127.0.0.1:9"\nlat = 0\nlon = 0`, {
      control: agentAnswer(202, answer),
      bootId: BOOT,
    });
    await stored(t, "/c");
    const res = await t.call("/.well-known/cdn/purge", { method: "POST", headers: t.auth, body: JSON.stringify({ tags: ["x"], soft: true }) });
    expect([res.status, JSON.parse(res.text)]).toEqual([202, answer]);
    expect((await t.call("/c", { method: "PURGE", headers: t.auth })).status).toBe(202);
    expect(t.forwarded).toEqual([
      { path: "/purge", body: { tags: ["x"], soft: true } },
      { path: "/purge", body: { urls: ["http://www.example.org/c"] } },
    ]);
    // Nothing was purged here directly: the agent applies it (with "fanout": false) when the control plane delivers it.
    expect((await t.call("/c")).xcs).toBe("HIT");
  });

  it("fails loudly when the agent cannot store the purge", async () => {
    const t = setup(CONTROL, { control: agentAnswer(503, { stored: false, error: "control plane unreachable" }), bootId: BOOT });
    const res = await t.call("/.well-known/cdn/purge", { method: "POST", headers: t.auth, body: '{"all":true}' });
    expect([res.status, JSON.parse(res.text).stored]).toEqual([503, false]);
    const unbound = setup(CONTROL, { bootId: BOOT });
    expect((await unbound.call("/.well-known/cdn/purge", { method: "POST", headers: unbound.auth, body: '{"all":true}' })).status).toBe(503);
  });

  it("applies a purge here only with fanout false (the agent's own call)", async () => {
    const t = setup(CONTROL, { control: agentAnswer(500, {}), bootId: BOOT });
    await t.call("/.well-known/cdn/control", { method: "POST", headers: t.auth, body: JSON.stringify({ stream: "S", seq: 0, boot: BOOT }) });
    await stored(t, "/h");
    const res = await t.call("/.well-known/cdn/purge", { method: "POST", headers: t.auth, body: JSON.stringify({ urls: ["http://www.example.org/h"], fanout: false }) });
    expect(res.status).toBe(200);
    expect(t.forwarded).toEqual([]);
    expect((await t.call("/h")).xcs).toBe("MISS");
  });

  it("records the agent's mark with its purge in one call, and refuses a mark outside the agent's own call", async () => {
    const t = setup(CONTROL, { control: agentAnswer(500, {}), bootId: BOOT });
    await stored(t, "/j");
    const purge = (body: object) => t.call("/.well-known/cdn/purge", { method: "POST", headers: t.auth, body: JSON.stringify(body) });
    const res = await purge({ urls: ["http://www.example.org/j"], fanout: false, mark: { stream: "S", seq: 12, boot: BOOT } });
    expect(res.status).toBe(200);
    expect((await t.call("/j")).xcs).toBe("MISS");
    expect(JSON.parse((await t.call("/.well-known/cdn/control", { headers: t.auth })).text)).toMatchObject({ mark: { stream: "S", seq: 12, boot: BOOT }, caughtUp: true });
    expect(JSON.parse((await purge({ tags: ["x"], mark: { stream: "S", seq: 13 } })).text).error).toMatch(/"mark" and "log_only" go with "fanout": false/);
    const wrongBoot = await purge({ tags: ["x"], fanout: false, mark: { stream: "S", seq: 13, boot: "1-00" } });
    expect([wrongBoot.status, JSON.parse(wrongBoot.text).error]).toEqual([400, 'mark: "boot" must be this box start\'s id']);
    expect(t.forwarded).toEqual([]);
  });

  it("revalidates entries stored before this box start until the agent marks it caught up", async () => {
    const t0 = Date.parse("2026-01-01T01:00:00Z");
    const boot1 = `${t0}-00112233445566aa`;
    const first = setup(CONTROL, { bootId: boot1, now: t0 + 1000, control: agentAnswer(200, {}) });
    await first.call("/.well-known/cdn/control", { method: "POST", headers: first.auth, body: JSON.stringify({ stream: "S", seq: 3, boot: boot1 }) });
    await stored(first, "/old1");
    await stored(first, "/old2");
    // The box starts again over the same store, later.
    const boot2 = `${t0 + 60_000}-00112233445566bb`;
    const t = setup(CONTROL, { bootId: boot2, now: t0 + 61_000, control: agentAnswer(200, {}), store: first.store });
    t.origin.set("/old1", { headers: { "cache-control": "max-age=600", etag: '"v1"' }, body: "/old1 v1" });
    const state = await t.call("/.well-known/cdn/control", { headers: t.auth });
    expect(JSON.parse(state.text)).toMatchObject({ edge: "e1", boot: boot2, mark: { stream: "S", seq: 3, boot: boot1 }, caughtUp: false });
    expect((await t.call("/old1")).xcs).toBe("REVALIDATED");
    // Only this start's id marks it caught up.
    const wrong = await t.call("/.well-known/cdn/control", { method: "POST", headers: t.auth, body: JSON.stringify({ stream: "S", seq: 3, boot: boot1 }) });
    expect([wrong.status, JSON.parse(wrong.text).error]).toEqual([400, '"boot" must be this box start\'s id']);
    const denied = await t.call("/.well-known/cdn/control", { method: "POST", body: JSON.stringify({ stream: "S", seq: 3, boot: boot2 }) });
    expect(denied.status).toBe(401);
    const ok = await t.call("/.well-known/cdn/control", { method: "POST", headers: t.auth, body: JSON.stringify({ stream: "S", seq: 5, boot: boot2 }) });
    expect(JSON.parse(ok.text).mark).toMatchObject({ stream: "S", seq: 5, boot: boot2 });
    expect((await t.call("/old2")).xcs).toBe("HIT");
  });
});

describe("the control agent's batches", () => {
  const CONTROL = '[control]\nservers = ["nats://127.0.0.1:4222"]';
  const urls = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `http://www.example.org/b/${from + i}`);

  it("are applied from the log alone: purged entries are never served, hard ones refetched, soft ones revalidated, also after a restart", async () => {
    const t = setup(CONTROL, { control: agentAnswer(500, {}), bootId: BOOT });
    await t.call("/.well-known/cdn/control", { method: "POST", headers: t.auth, body: JSON.stringify({ stream: "S", seq: 0, boot: BOOT }) });
    for (const i of [0, 999, 1000, 1500]) await stored(t, `/b/${i}`);
    const batch = (body: object, seq: number) =>
      t.call("/.well-known/cdn/purge", {
        method: "POST",
        headers: t.auth,
        body: JSON.stringify({ ...body, fanout: false, log_only: true, mark: { stream: "S", seq, boot: BOOT } }),
      });
    expect((await batch({ urls: urls(1000) }, 1)).status).toBe(200);
    expect((await batch({ urls: urls(1000, 1000), soft: true }, 2)).status).toBe(200);
    // Nothing was deleted: the lookups apply the log.
    for (const i of [0, 999, 1000, 1500]) expect(await t.store.get(`www.example.org/b/${i}`)).not.toBeNull();
    expect(JSON.parse((await t.call("/.well-known/cdn/control", { headers: t.auth })).text).mark).toMatchObject({ stream: "S", seq: 2, boot: BOOT });
    // The box starts again over the same store (another start, caught up): the log is read back from it.
    const boot2 = `${Date.parse("2026-01-01T01:00:00Z") + 60_000}-00112233445566bb`;
    const again = setup(CONTROL, { control: agentAnswer(500, {}), bootId: boot2, store: t.store, now: t.now() + 60_000 });
    await again.call("/.well-known/cdn/control", { method: "POST", headers: again.auth, body: JSON.stringify({ stream: "S", seq: 2, boot: boot2 }) });
    for (const i of [0, 999, 1000, 1500]) again.origin.set(`/b/${i}`, { headers: { "cache-control": "max-age=600", etag: '"v1"' }, body: `/b/${i} v1` });
    expect((await again.call("/b/999")).xcs).toBe("MISS");
    expect((await again.call("/b/1500")).xcs).toBe("REVALIDATED");
    expect((await t.call("/b/0")).xcs).toBe("MISS");
    expect((await t.call("/b/1000")).xcs).toBe("REVALIDATED");
  });

  it("\"log_only\" is the agent's own call's, and true or false", async () => {
    const t = setup(CONTROL, { control: agentAnswer(500, {}), bootId: BOOT });
    const purge = (body: object) => t.call("/.well-known/cdn/purge", { method: "POST", headers: t.auth, body: JSON.stringify(body) });
    expect(JSON.parse((await purge({ tags: ["x"], log_only: true })).text).error).toMatch(/"log_only" go with "fanout": false/);
    expect(JSON.parse((await purge({ tags: ["x"], fanout: false, log_only: "yes" })).text).error).toBe('"log_only" must be true or false');
    expect(t.forwarded).toEqual([]);
  });
});

describe("the control lease", () => {
  const CONTROL = '[control]\nservers = ["nats://127.0.0.1:4222"]\nlease_ms = 5000';
  const caughtUp = (t: ReturnType<typeof setup>) =>
    t.call("/.well-known/cdn/control", { method: "POST", headers: t.auth, body: JSON.stringify({ stream: "S", seq: 0, boot: BOOT }) });

  it("revalidates every stored entry once the agent's lease has run out, and says so in health and /control", async () => {
    let lease = { state: "current", trustedUntil: 0, confirmedAt: 0, lastContact: 0, lag: 0 };
    const t = setup(CONTROL, { control: async () => new Response("{}"), bootId: BOOT, lease: () => lease });
    lease = { ...lease, trustedUntil: t.now() + 5000, confirmedAt: t.now(), lastContact: t.now() };
    await caughtUp(t);
    await stored(t, "/l");
    expect((await t.call("/.well-known/cdn/health")).text).toBe("ok e1\n");
    // The agent hears nothing more: its last confirmation ages past lease_ms.
    lease = { ...lease, state: "cut-off" };
    t.advance(5);
    expect((await t.call("/l")).xcs).toBe("REVALIDATED");
    // Every request while cut off, not once: a purge may come at any moment the box cannot hear.
    t.advance(1);
    expect((await t.call("/l")).xcs).toBe("REVALIDATED");
    const health = await t.call("/.well-known/cdn/health");
    expect(health.status).toBe(200);
    expect(health.text).toMatch(/^ok e1 \(control: cut off from the control plane since 2026-01-01T01:00:0\d\.000Z; revalidating every stored entry\)\n$/);
    const state = JSON.parse((await t.call("/.well-known/cdn/control", { headers: t.auth })).text);
    expect(state.lease).toMatchObject({ state: "cut-off", trusted: false, revalidating: true });
    // Confirmed current again: trusted at the next request.
    lease = { ...lease, state: "current", trustedUntil: t.now() + 5000, confirmedAt: t.now(), lastContact: t.now() };
    expect((await t.call("/l")).xcs).toBe("HIT");
  });

  it("with when_cut_off = \"serve\", keeps answering from cache past the lease and states the risk", async () => {
    const lease = { state: "cut-off", trustedUntil: 0, confirmedAt: 0, lastContact: 0, lag: 0 };
    const t = setup(`${CONTROL}\nwhen_cut_off = "serve"`, { control: async () => new Response("{}"), bootId: BOOT, lease: () => lease });
    await caughtUp(t);
    await stored(t, "/s");
    expect((await t.call("/s")).xcs).toBe("HIT");
    expect((await t.call("/.well-known/cdn/health")).text).toMatch(/^ok e1 \(control: cut off .*; serving from cache anyway\)\n$/);
  });

  it("does not trust the cache while its agent does not answer", async () => {
    const t = setup(CONTROL, { control: async () => new Response("{}"), bootId: BOOT, lease: () => { throw new Error("agent gone"); } });
    await caughtUp(t);
    t.origin.set("/n", { headers: { "cache-control": "max-age=600", etag: '"v1"' }, body: "/n v1" });
    await t.call("/n");
    t.advance(1);
    expect((await t.call("/n")).xcs).toBe("REVALIDATED");
    expect((await t.call("/.well-known/cdn/health")).text).toMatch(/^ok e1 \(control: this box's control agent is not answering/);
  });
});

describe("health endpoint", () => {
  it("answers 503 when the store cannot be read, so a box with a failing disk leaves DNS and BGP", async () => {
    const store = new MemoryStore();
    let broken = false;
    const get = store.get.bind(store);
    store.get = async (key) => {
      if (broken) throw new Error("EIO");
      return get(key);
    };
    const app = createEdgeApp({ config: parseConfig('[edge]\nname = "e9"\norigin = "http://origin.test"'), store, log: () => undefined });
    const health = () => app.fetch(new Request("http://www.example.org/.well-known/cdn/health"), {}, { waitUntil() {} } as never);
    expect((await health()).status).toBe(200);
    broken = true;
    const res = await health();
    expect(res.status).toBe(503);
    expect(await res.text()).toBe("store unavailable e9\n");
    broken = false;
    expect((await health()).status).toBe(200);
  });
});
