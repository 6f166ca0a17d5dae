import { describe, expect, it } from "vitest";
import { ChallengePublisher, type FetchLike } from "./dns-challenge.ts";

const nodes = [
  { url: "http://127.0.0.1:8053", dns: "127.0.0.1:5353" },
  { url: "http://127.0.0.2:8053/", dns: "127.0.0.2:5353" },
];

function recorder(status = (url: string) => (url ? 200 : 200)) {
  const calls: { url: string; method: string; auth: string | null; body: unknown }[] = [];
  const fetch: FetchLike = async (url, init) => {
    calls.push({ url, method: init.method!, auth: new Headers(init.headers).get("authorization"), body: JSON.parse(init.body as string) });
    return new Response(status(url) === 200 ? "ok\n" : "no\n", { status: status(url) });
  };
  return { calls, fetch };
}

describe("the DNS-01 challenge contract", () => {
  it("publishes the TXT to every DNS node with the admin token", async () => {
    const { calls, fetch } = recorder();
    const p = new ChallengePublisher({ nodes, token: "t".repeat(20), fetch });
    await p.publish("_acme-challenge.www.geo.example.org", "abc");
    expect(calls).toEqual([
      { url: "http://127.0.0.1:8053/admin/acme-challenge", method: "POST", auth: `Bearer ${"t".repeat(20)}`, body: { name: "_acme-challenge.www.geo.example.org", value: "abc", ttl: 600 } },
      { url: "http://127.0.0.2:8053/admin/acme-challenge", method: "POST", auth: `Bearer ${"t".repeat(20)}`, body: { name: "_acme-challenge.www.geo.example.org", value: "abc", ttl: 600 } },
    ]);
    await p.remove("_acme-challenge.www.geo.example.org", "abc");
    expect(calls.slice(2).map((c) => [c.method, c.body])).toEqual([
      ["DELETE", { name: "_acme-challenge.www.geo.example.org", value: "abc" }],
      ["DELETE", { name: "_acme-challenge.www.geo.example.org", value: "abc" }],
    ]);
  });

  it("fails when any node refuses, naming it and its answer", async () => {
    const { fetch } = recorder((url) => (url.includes("127.0.0.2") ? 401 : 200));
    const p = new ChallengePublisher({ nodes, token: "t".repeat(20), fetch });
    await expect(p.publish("_acme-challenge.x.geo.example.org", "v")).rejects.toThrow(
      "DNS node http://127.0.0.2:8053/: POST acme-challenge answered 401 no",
    );
    expect(await p.remove("_acme-challenge.x.geo.example.org", "v")).toEqual([
      "DNS node http://127.0.0.2:8053/: DELETE acme-challenge answered 401 no",
    ]);
  });

  it("waits until every node answers the value over DNS", async () => {
    let now = 0;
    const seen: string[] = [];
    const answers: Record<string, number> = { "127.0.0.1:5353": 1, "127.0.0.2:5353": 3 }; // lookups until visible
    const p = new ChallengePublisher({
      nodes,
      token: "t".repeat(20),
      fetch: recorder().fetch,
      now: () => now,
      sleep: async (ms) => void (now += ms),
      lookup: async (server, name) => {
        seen.push(server);
        expect(name).toBe("_acme-challenge.x.geo.example.org");
        return --answers[server]! <= 0 ? ["other", "v"] : ["other"];
      },
    });
    await p.waitVisible("_acme-challenge.x.geo.example.org", "v", 60_000);
    // The first node is asked once; the second until it answers.
    expect(seen).toEqual(["127.0.0.1:5353", "127.0.0.2:5353", "127.0.0.2:5353", "127.0.0.2:5353"]);
  });

  it("gives up after the timeout, naming the nodes that never answered", async () => {
    let now = 0;
    let lookups = 0;
    const p = new ChallengePublisher({
      nodes,
      token: "t".repeat(20),
      fetch: recorder().fetch,
      now: () => now,
      sleep: async (ms) => void (now += ms),
      lookup: async (server) => {
        lookups++;
        if (server.startsWith("127.0.0.2")) throw new Error("ETIMEOUT");
        return ["v"];
      },
    });
    await expect(p.waitVisible("n", "v", 10_000)).rejects.toThrow("TXT n not answered by 127.0.0.2:5353 within 10000 ms (127.0.0.2:5353: ETIMEOUT)");
    expect(lookups).toBeLessThan(20);
  });
});
