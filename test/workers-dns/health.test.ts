/**
 * Edge health in the GeoDNS worker under Miniflare: no timers there, so a probe round starts from request handling
 * (ctx.waitUntil) when one is due; the operator endpoints answer as on the Node host. The worker module is called
 * directly with its own CDN_CONFIG (edges with urls) and the bound test databases; probes go through a stubbed
 * global fetch (one edge answers "ok", one "draining", one refuses).
 */
import { Buffer } from "node:buffer";
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import * as dnsPacket from "dns-packet";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import worker, { type DnsEnv } from "../../src/dns/worker.ts";
import { TEST_ZONE_TOML as zoneToml } from "../support/dns-zone.ts";

const TOKEN = "workers-admin-token-0123456789";
const config = `${zoneToml
  .replace("answers = 2", "answers = 3")
  .replace("lon = -0.13", 'lon = -0.13\nurl = "http://lon.test"')
  .replace("lon = -122.33", 'lon = -122.33\nurl = "http://sea.test"')
  .replace("lon = 116.4", 'lon = 116.4\nurl = "http://pek.test"')}
[dns.health]
interval_ms = 60000
timeout_ms = 1000
[admin]
token = "${TOKEN}"
`;
const workerEnv: DnsEnv = { ...(env as DnsEnv), CDN_CONFIG: config };

beforeAll(() => {
  const real = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (!url.host.endsWith(".test")) return real(input, init);
    if (url.host === "lon.test") throw new TypeError("connection refused");
    if (url.pathname.endsWith("/metrics")) return new Response("parrot_edge_hit_ratio 0.25\nparrot_edge_requests_total 8\n");
    return url.host === "pek.test" ? new Response("draining pek\n", { status: 503 }) : new Response("ok sea\n");
  });
});
afterAll(() => void vi.restoreAllMocks());

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await worker.fetch(new Request(`https://dns.example${path}`, init), workerEnv, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

async function director(client: string): Promise<unknown[]> {
  const q = dnsPacket.encode({ type: "query", id: 0, questions: [{ name: "director.geo.example.org", type: "A" }] });
  const res = await call(`/dns-query?dns=${Buffer.from(q).toString("base64url")}`, { headers: { "cf-connecting-ip": client } });
  return (dnsPacket.decode(Buffer.from(await res.arrayBuffer())).answers ?? []).map((a) => (a as { data: unknown }).data);
}

describe("edge health in the DNS worker", () => {
  it("probes from request handling: the first answer uses all edges, the next ones only those in service", async () => {
    expect(await director("81.2.69.142")).toEqual(["192.0.2.21", "192.0.2.22", "192.0.2.23"]);
    expect(await director("81.2.69.142")).toEqual(["192.0.2.22"]); // London refused, Beijing draining
    const status = (await (await call("/status.json")).json()) as { edges: Array<{ name: string; state: string; hitRatio?: number }> };
    expect(status.edges.map((e) => [e.name, e.state])).toEqual([
      ["gb-lon", "down"],
      ["us-sea", "up"],
      ["cn-pek", "draining"],
    ]);
    expect(status.edges[1]!.hitRatio).toBe(0.25);
    const page = await (await call("/status")).text();
    expect(page).toContain('data-edge="gb-lon" data-state="down"');
  });

  it("serves /metrics and /admin/drain with the token only", async () => {
    expect((await call("/metrics")).status).toBe(401);
    const metrics = await (await call("/metrics", { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(metrics).toContain('parrot_dns_edge_health{edge="us-sea",state="up"} 1');
    expect(metrics).toMatch(/parrot_dns_queries_total\{transport="doh",qtype="A",rcode="NOERROR"\} \d+/);
    const drain = (token?: string) =>
      call("/admin/drain", {
        method: "POST",
        headers: token ? { authorization: `Bearer ${token}` } : {},
        body: JSON.stringify({ edge: "us-sea", draining: true }),
      });
    expect((await drain()).status).toBe(401);
    expect(await director("81.2.69.142")).toEqual(["192.0.2.22"]);
    expect((await drain(TOKEN)).status).toBe(200);
    // Nothing left in service: fail-open with every edge the operator did not drain.
    expect(await director("81.2.69.142")).toEqual(["192.0.2.21", "192.0.2.23"]);
  });
});
