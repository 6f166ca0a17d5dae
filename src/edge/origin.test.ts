import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { ClientBodyError, CONTROL_APPLIED_HEADER, isBehind, isUntrustedRequestHeader, OriginPool, originFetcher, OriginTimeout, ShieldPool } from "./origin.ts";

function edgeWith(toml: string) {
  return parseConfig(`[edge]\nname = "t"\norigin_timeout_ms = 50\n${toml}`).edge!;
}

const threeOrigins = `
origin_max_fails = 2
origin_fail_timeout = 10
origins = [ { url = "http://primary-a", weight = 3 }, { url = "http://primary-b", weight = 1 },
            { url = "http://backup", priority = 1 } ]`;

describe("origin pool", () => {
  it("spreads by weight within the preferred priority and keeps backups for failures", () => {
    const pool = new OriginPool(edgeWith(threeOrigins), () => 0, (() => {
      let n = 0;
      return () => ((n++ % 8) + 0.5) / 8;
    })());
    const picks = Array.from({ length: 8 }, () => pool.url(pool.pick(new Set())!));
    expect(picks.filter((u) => u === "http://primary-a")).toHaveLength(6);
    expect(picks.filter((u) => u === "http://primary-b")).toHaveLength(2);
    expect(pool.url(pool.pick(new Set([0, 1]))!)).toBe("http://backup");
  });

  it("skips an origin after max_fails failures in a row, for fail_timeout seconds", () => {
    let now = 0;
    const pool = new OriginPool(edgeWith(threeOrigins), () => now, () => 0);
    pool.failed(0);
    expect(pool.down()).toEqual([]);
    pool.failed(0);
    expect(pool.down()).toEqual(["http://primary-a"]);
    expect(pool.url(pool.pick(new Set())!)).toBe("http://primary-b");
    now = 10_001;
    expect(pool.down()).toEqual([]);
    expect(pool.url(pool.pick(new Set())!)).toBe("http://primary-a");
  });

  it("tries every origin when all are down rather than none", () => {
    const pool = new OriginPool(edgeWith(`origin_max_fails = 1\norigins = [ { url = "http://a" }, { url = "http://b" } ]`), () => 0);
    pool.failed(0);
    pool.failed(1);
    expect(pool.pick(new Set())).toBeDefined();
  });
});

describe("origin failover", () => {
  const client = new Request("http://www.example.org/x?y=1");

  it("moves an idempotent request to the next origin on a connect error or timeout", async () => {
    const seen: string[] = [];
    const fetcher = originFetcher(
      edgeWith(`origins = [ { url = "http://down" }, { url = "http://slow", priority = 1 }, { url = "http://up", priority = 2 } ]`),
      async (input) => {
        const url = String(input instanceof Request ? input.url : input);
        seen.push(url);
        if (url.startsWith("http://down")) throw new TypeError("connection refused");
        if (url.startsWith("http://slow")) return new Promise<Response>(() => {});
        return new Response("ok");
      },
    );
    const res = await fetcher(client, undefined, { method: "GET" });
    expect(await res.text()).toBe("ok");
    expect(seen).toEqual(["http://down/x?y=1", "http://slow/x?y=1", "http://up/x?y=1"]);
  });

  it("does not resend a request with a body", async () => {
    let calls = 0;
    const fetcher = originFetcher(edgeWith(`origins = [ { url = "http://a" }, { url = "http://b" } ]`), async () => {
      calls++;
      throw new TypeError("connection refused");
    });
    await expect(fetcher(client, undefined, { method: "POST", body: new Response("x").body })).rejects.toThrow("refused");
    expect(calls).toBe(1);
  });

  it("retries on origin_retry_status and returns the last answer when every origin gave one", async () => {
    const fetcher = originFetcher(
      edgeWith(`origin_retry_status = [503]\norigins = [ { url = "http://a" }, { url = "http://b", priority = 1 } ]`),
      async (input) => new Response(String(input), { status: String(input).startsWith("http://a") ? 503 : 200 }),
    );
    expect((await fetcher(client, undefined, { method: "GET" })).status).toBe(200);
    const allDown = originFetcher(edgeWith(`origin_retry_status = [503]\norigin = "http://a"`), async () => new Response("", { status: 503 }));
    expect((await allDown(client, undefined, { method: "GET" })).status).toBe(503);
  });

  it("reports a timeout as OriginTimeout", async () => {
    const fetcher = originFetcher(edgeWith(`origin = "http://slow"`), () => new Promise<Response>(() => {}));
    await expect(fetcher(client, undefined, { method: "GET" })).rejects.toBeInstanceOf(OriginTimeout);
  });

  it("a failing client body is the client's fault: ClientBodyError, the origin stays in service", async () => {
    const edge = edgeWith(`origin_max_fails = 1\norigin = "http://a"`);
    const pool = new OriginPool(edge);
    const fetcher = originFetcher(edge, async (_input, init) => {
      await new Response(init!.body).arrayBuffer(); // the origin reads the upload, which breaks midway
      return new Response("stored");
    }, pool);
    for (let i = 0; i < 3; i++) {
      let sent = 0;
      const aborted = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent++ < 2) c.enqueue(new Uint8Array(10));
          else c.error(new TypeError("client went away"));
        },
      });
      await expect(fetcher(client, undefined, { method: "POST", body: aborted })).rejects.toBeInstanceOf(ClientBodyError);
    }
    expect(pool.down()).toEqual([]);
  });
});

describe("a client body that fails", () => {
  // On workerd a body stream that errors ends a chunked upload with a clean last chunk (test/e2e/uploads.test.ts):
  // the failure must abort the origin request instead, and the body given to fetch must neither end nor error.
  it("aborts the origin request at once; the body the origin reads neither ends nor errors", async () => {
    let signal: AbortSignal | undefined;
    let originRead: "ended" | "errored" | "still reading" = "still reading";
    const fetcher = originFetcher(parseConfig(`[edge]\norigin_timeout_ms = 600000\norigin = "http://a"`).edge!, async (_input, init) => {
      signal = init!.signal!;
      const reader = (init!.body as ReadableStream<Uint8Array>).getReader();
      void (async () => {
        while (!(await reader.read()).done);
        originRead = "ended";
      })().catch(() => (originRead = "errored"));
      return new Promise<Response>(() => {}); // answers only once the body is complete
    });
    let sent = 0;
    const cut = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent++ < 2) c.enqueue(new Uint8Array(10));
        else c.error(new TypeError("client went away"));
      },
    });
    await expect(fetcher(new Request("https://www.example.org/up", { method: "POST" }), undefined, { method: "POST", body: cut })).rejects.toBeInstanceOf(ClientBodyError);
    expect(signal?.aborted).toBe(true);
    expect(originRead).toBe("still reading");
  });
});

describe("headers the origin gets", () => {
  it("drops every client forwarding and override header, and sets the edge's own", async () => {
    const forged = {
      "x-forwarded-for": "6.6.6.6", "x-forwarded-host": "evil", "x-forwarded-proto": "http", "x-forwarded-scheme": "http",
      "x-forwarded-server": "evil", "x-forwarded-port": "1", "x-forwarded-prefix": "/evil", "x-host": "evil",
      "x-original-host": "evil", "x-original-url": "/admin", "x-rewrite-url": "/admin", "x-http-method": "DELETE",
      "x-http-method-override": "DELETE", "x-method-override": "DELETE", forwarded: "for=6.6.6.6", "x-real-ip": "6.6.6.6",
      "true-client-ip": "6.6.6.6", "cf-connecting-ip": "6.6.6.6", "x-client-ip": "6.6.6.6", "front-end-https": "on",
      "accept-language": "it", "user-agent": "kept",
    };
    let seen: Headers | undefined;
    const fetcher = originFetcher(edgeWith(`origin = "http://a"`), async (_i, init) => {
      seen = new Headers(init!.headers);
      return new Response("ok");
    });
    await fetcher(new Request("https://www.example.org/x", { headers: forged }), "192.0.2.9", { method: "GET" });
    for (const name of Object.keys(forged)) {
      if (name === "accept-language" || name === "user-agent") expect(seen!.get(name)).toBe(forged[name]);
      else if (name === "x-forwarded-for") expect(seen!.get(name)).toBe("192.0.2.9");
      else if (name === "x-forwarded-host") expect(seen!.get(name)).toBe("www.example.org");
      else if (name === "x-forwarded-proto") expect(seen!.get(name)).toBe("https");
      else expect(seen!.has(name), name).toBe(false);
    }
    expect(isUntrustedRequestHeader("x-forwarded-anything")).toBe(true);
    expect(isUntrustedRequestHeader("accept")).toBe(false);
  });
});

describe("shields (tiered cache)", () => {
  const tiersToml = `origin = "http://origin"
origin_max_fails = 1
origin_fail_timeout = 10
shields = [ { name = "shield-a", url = "http://shield-a:8080" }, { name = "shield-b", url = "http://shield-b:8080" } ]`;
  const keyOf = (path: string) => `www.example.org${path}`;
  /** A path the given shield owns (first in its rendezvous order). */
  const ownedBy = (shields: ShieldPool, name: string) => {
    for (let i = 0; ; i++) if (shields.view(keyOf(`/o${i}`))[0]!.name === name) return `/o${i}`;
  };
  const hostOf = (input: RequestInfo | URL) => new URL(String(input instanceof Request ? input.url : input)).host;

  it("sends a GET to the shield its key hashes to, the same one from every edge, with the site's host and CDN-Loop", async () => {
    const a = new ShieldPool(edgeWith(tiersToml));
    const b = new ShieldPool(parseConfig(`[edge]\nname = "other-edge"\n${tiersToml}`).edge!);
    const path = ownedBy(a, "shield-b");
    expect(b.candidates(keyOf(path)).map((i) => b.shields[i]!.name)).toEqual(["shield-b", "shield-a"]);
    const seen: { host: string; headers: Headers }[] = [];
    const fetcher = originFetcher(edgeWith(tiersToml), async (input, init) => {
      seen.push({ host: hostOf(input), headers: new Headers(init?.headers) });
      return new Response("x", { headers: { "cache-status": "shield-b; hit" } });
    }, undefined, { rules: [], shields: a });
    const res = await fetcher(new Request(`http://www.example.org${path}`), "192.0.2.1", { method: "GET" });
    expect(await res.text()).toBe("x");
    expect(seen.map((s) => s.host)).toEqual(["shield-b:8080"]);
    expect(seen[0]!.headers.get("x-forwarded-host")).toBe("www.example.org");
    expect(seen[0]!.headers.get("cdn-loop")).toBe("t");
  });

  it("regions: an edge fills from its region's shields, then the fleet-wide ones; a regional shield that owns a key goes up a tier", () => {
    const regions = `origin = "http://origin"
shields = [
  { name = "eu-1", url = "http://eu-1", region = "eu" },
  { name = "eu-2", url = "http://eu-2", region = "eu" },
  { name = "us-1", url = "http://us-1", region = "us" },
  { name = "global", url = "http://global" },
]`;
    const pool = (name: string, region?: string) => new ShieldPool(parseConfig(`[edge]\nname = "${name}"\n${region ? `region = "${region}"\n` : ""}${regions}`).edge!);
    const names = (p: ShieldPool, key: string) => p.candidates(key).map((i) => p.shields[i]!.name);
    const euEdge = pool("eu-edge", "eu");
    const keys = Array.from({ length: 40 }, (_, i) => keyOf(`/r${i}`));
    for (const key of keys) {
      const order = names(euEdge, key);
      expect(order.slice(0, 2).sort()).toEqual(["eu-1", "eu-2"]); // its region first, in the key's order
      expect(order[2]).toBe("global");
      expect(order).not.toContain("us-1");
    }
    expect(names(pool("plain-edge"), keys[0]!)).toEqual(["global"]); // no region: the fleet-wide shields
    expect(names(pool("us-edge", "us"), keys[0]!)).toEqual(["us-1", "global"]);
    // eu-1 owns some keys in its region: those go to the fleet-wide tier; the others to eu-2 first.
    const eu1 = pool("eu-1", "eu");
    const owned = keys.filter((k) => names(euEdge, k)[0] === "eu-1");
    const other = keys.filter((k) => names(euEdge, k)[0] === "eu-2");
    expect(owned.length).toBeGreaterThan(0);
    expect(other.length).toBeGreaterThan(0);
    for (const k of owned) expect(names(eu1, k)).toEqual(["global"]);
    for (const k of other) expect(names(eu1, k)).toEqual(["eu-2", "global"]);
    // The fleet-wide shield is above the regions, whatever its own region: it fills from the origin.
    for (const k of keys) expect(names(pool("global", "eu"), k)).toEqual([]);
    expect(() => parseConfig(`[edge]\nregion = "e u"\n${regions}`)).toThrow(/edge\.region: letters, digits/);
  });

  it("active health: probes take a dead shield out before any fill fails, and bring it back before fail_timeout ends", async () => {
    let now = 1_000_000;
    const toml = `${tiersToml.replace("origin_fail_timeout = 10", "origin_fail_timeout = 600")}
shield_health = { interval_ms = 1000, timeout_ms = 500, down_after = 2, up_after = 1 }`;
    const alive: Record<string, boolean> = { "shield-a:8080": true, "shield-b:8080": true };
    const probes: string[] = [];
    const shields = new ShieldPool(edgeWith(toml), () => now, async (input) => {
      const url = new URL(String(input));
      probes.push(`${url.host}${url.pathname}`);
      if (!alive[url.host]) throw new TypeError("connection refused");
      return new Response("ok\n");
    });
    const path = ownedBy(shields, "shield-a");
    const order = () => shields.candidates(keyOf(path)).map((i) => shields.shields[i]!.name);
    await shields.probeIfDue();
    expect(probes.sort()).toEqual(["shield-a:8080/.well-known/cdn/health", "shield-b:8080/.well-known/cdn/health"]);
    expect(shields.probeIfDue()).toBeUndefined(); // not due again within interval_ms
    alive["shield-a:8080"] = false;
    now += 1000;
    await shields.probeIfDue();
    expect(order()).toEqual(["shield-a", "shield-b"]); // one failed probe: not yet (down_after = 2)
    now += 1000;
    await shields.probeIfDue();
    expect(order()).toEqual(["shield-b"]);
    expect(shields.states().find((s) => s.name === "shield-a")).toMatchObject({ up: false, probe: "down", skippedUntil: undefined });
    // Back: one good probe brings it in; a skip that a failed fill caused meanwhile ends with it (not 600 s later).
    shields.failed(0);
    alive["shield-a:8080"] = true;
    now += 1000;
    await shields.probeIfDue();
    expect(order()).toEqual(["shield-a", "shield-b"]);
    expect(shields.states()[0]).toMatchObject({ up: true, probe: "up", skippedUntil: undefined });
  });

  it("without shield_health probes (interval_ms = 0) or a probe function, health is passive only", () => {
    const off = new ShieldPool(edgeWith(`${tiersToml}\nshield_health = { interval_ms = 0 }`), Date.now, async () => new Response("ok"));
    expect(off.probeIfDue()).toBeUndefined();
    expect(new ShieldPool(edgeWith(tiersToml)).probeIfDue()).toBeUndefined();
  });

  it("a shield that fails goes to the next one in the key's order, then the origin; passive health skips it afterwards", async () => {
    const shields = new ShieldPool(edgeWith(tiersToml));
    const path = ownedBy(shields, "shield-a");
    const seen: string[] = [];
    const events: string[] = [];
    const fetcher = originFetcher(edgeWith(tiersToml), async (input) => {
      const host = hostOf(input);
      seen.push(host);
      if (host === "shield-a:8080") throw new TypeError("connection refused");
      if (host === "shield-b:8080") return new Response("own failure", { status: 500, headers: { "cache-status": "shield-b; fwd=uri-miss" } });
      return new Response("from origin");
    }, undefined, { rules: [], shields, onShield: (_, e) => events.push(`${e.shield}:${e.result}`) });
    const res = await fetcher(new Request(`http://www.example.org${path}`), undefined, { method: "GET" });
    expect(await res.text()).toBe("from origin");
    expect(seen).toEqual(["shield-a:8080", "shield-b:8080", "origin"]);
    expect(events).toEqual(["shield-a:failed", "shield-b:failed"]);
    expect(shields.down().sort()).toEqual(["shield-a", "shield-b"]);
    seen.length = 0;
    await fetcher(new Request(`http://www.example.org${path}`), undefined, { method: "GET" });
    expect(seen).toEqual(["origin"]);
  });

  it("a shield whose origin failed stays in service; a 508 (a loop) is passed on at once; POST goes to the origin", async () => {
    const shields = new ShieldPool(edgeWith(tiersToml));
    const path = ownedBy(shields, "shield-a");
    const seen: string[] = [];
    let answer = new Response("502 origin unreachable\n", { status: 502, headers: { "cache-status": "shield-a; fwd=uri-miss; detail=origin-unreachable" } });
    const fetcher = originFetcher(edgeWith(tiersToml), async (input) => {
      const host = hostOf(input);
      seen.push(host);
      return host === "origin" ? new Response("from origin") : answer;
    }, undefined, { rules: [], shields });
    expect(await (await fetcher(new Request(`http://www.example.org${path}`), undefined, { method: "GET" })).text()).toBe("from origin");
    expect(seen).toEqual(["shield-a:8080", "origin"]);
    expect(shields.down()).toEqual([]);
    seen.length = 0;
    answer = new Response("508 loop detected\n", { status: 508 });
    expect((await fetcher(new Request(`http://www.example.org${path}`), undefined, { method: "GET" })).status).toBe(508);
    expect(seen).toEqual(["shield-a:8080"]);
    seen.length = 0;
    await fetcher(new Request(`http://www.example.org${path}`, { method: "POST", body: "x" }), undefined, { method: "POST", body: new Response("x").body });
    expect(seen).toEqual(["origin"]);
  });

  it("a box that is one of the shields fills from the origin for the keys it owns, and skips itself in the others' order", () => {
    const self = new ShieldPool(parseConfig(`[edge]\nname = "shield-a"\n${tiersToml}`).edge!);
    const owned = ownedBy(self, "shield-a");
    const other = ownedBy(self, "shield-b");
    expect(self.candidates(keyOf(owned))).toEqual([]);
    expect(self.candidates(keyOf(other)).map((i) => self.shields[i]!.name)).toEqual(["shield-b"]);
  });

  it("the config names the shield field and reason", () => {
    expect(() => parseConfig(`[edge]\norigin = "http://o"\nshields = [ { name = "a", url = "ftp://x" } ]`)).toThrow(/edge\.shields\[0\]\.url: must be an http/);
    expect(() => parseConfig(`[edge]\norigin = "http://o"\nshields = [ { url = "http://x" } ]`)).toThrow(/edge\.shields\[0\]\.name/);
    expect(() => parseConfig(`[edge]\norigin = "http://o"\nshields = [ { name = "a", url = "http://x" }, { name = "a", url = "http://y" } ]`)).toThrow(/edge\.shields: each shield needs a name of its own/);
    expect(() => parseConfig(`[edge]\norigin = "http://o"\nshields = []`)).toThrow(/edge\.shields: name at least one shield/);
  });
});

describe("shields and the control plane's purges", () => {
  const toml = `origin = "http://origin"
shields = [ { name = "shield-a", url = "http://shield-a:8080" } ]`;

  it("isBehind: a shield that applied fewer purges of the same stream, or says nothing, is behind", () => {
    const ours = { stream: "s1", seq: 10 };
    expect(isBehind("s1 9", ours)).toBe(true);
    expect(isBehind("s1 10", ours)).toBe(false);
    expect(isBehind("s1 11", ours)).toBe(false);
    expect(isBehind(null, ours)).toBe(true);
    expect(isBehind("garbage", ours)).toBe(true);
    expect(isBehind("s0 3", ours)).toBe(false); // another stream: a recreated stream's numbers do not compare
    expect(isBehind(null, undefined)).toBe(false); // no control plane here: nothing to compare
  });

  it("an edge does not take an answer from a shield behind it on purges: the origin answers, and the mark never reaches the client", async () => {
    const seen: string[] = [];
    let shieldMark = "s1 9";
    const events: string[] = [];
    const fetcher = originFetcher(edgeWith(toml), async (input) => {
      const host = new URL(String(input instanceof Request ? input.url : input)).host;
      seen.push(host);
      return host === "origin" ? new Response("fresh") : new Response("maybe purged", { headers: { [CONTROL_APPLIED_HEADER]: shieldMark } });
    }, undefined, { rules: [], shields: new ShieldPool(edgeWith(toml)), applied: () => ({ stream: "s1", seq: 10 }), onShield: (_, e) => events.push(e.result) });
    const client = new Request("http://www.example.org/x");
    expect(await (await fetcher(client, undefined, { method: "GET" })).text()).toBe("fresh");
    expect(seen).toEqual(["shield-a:8080", "origin"]);
    shieldMark = "s1 10";
    const caughtUp = await fetcher(client, undefined, { method: "GET" });
    expect(await caughtUp.text()).toBe("maybe purged");
    expect(caughtUp.headers.has(CONTROL_APPLIED_HEADER)).toBe(false);
    expect(events).toEqual(["behind", "miss"]);
  });
});
