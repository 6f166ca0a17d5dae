import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { OriginPool, originFetcher, OriginTimeout } from "./origin.ts";

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
});
