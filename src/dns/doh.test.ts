import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";
import { parseCidr } from "../net/ip.ts";
import { stripPort } from "../net/client-address.ts";
import { createDohHandler } from "./doh.ts";
import { testServer } from "../../test/support/dns-server.ts";

const server = testServer();
const handler = createDohHandler(() => server, [parseCidr("10.0.0.0/8")!]);
const q = (name: string, type = "TXT") => dnsPacket.encode({ type: "query", id: 0, questions: [{ name, type: type as never }] });
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64url");
function req(url: string, init: RequestInit = {}, peer = "81.2.69.142:5000") {
  const r = new Request(`http://x${url}`, init);
  Object.defineProperty(r, "cf", { value: { clientIp: peer } });
  return handler(r);
}
const txtOf = async (res: Response) =>
  String(((dnsPacket.decode(Buffer.from(await res.arrayBuffer())).answers![0] as dnsPacket.TxtAnswer).data as Buffer[])[0]);

describe("DoH handler", () => {
  it("answers GET ?dns= and POST with a private max-age for tailored answers", async () => {
    const get = await req(`/dns-query?dns=${b64(q("director.geo.example.org"))}`);
    expect(get.status).toBe(200);
    expect(get.headers.get("content-type")).toBe("application/dns-message");
    expect(get.headers.get("cache-control")).toBe("private, max-age=30");
    expect(await txtOf(get)).toContain("ip 81.2.69.142 v4 city london country gb gbr");
    const post = await req("/dns-query", { method: "POST", headers: { "content-type": "application/dns-message" }, body: q("geo.example.org", "SOA") });
    expect(post.status).toBe(200);
    expect(post.headers.get("cache-control")).toBe("max-age=30");
  });

  it("returns 200 for DNS errors and 400/405/415/404 for bad HTTP", async () => {
    expect((await req(`/dns-query?dns=${b64(q("example.com"))}`)).status).toBe(200);
    expect((await req("/dns-query?dns=!!!")).status).toBe(400);
    expect((await req("/dns-query?dns=AAAA")).status).toBe(400);
    expect((await req("/dns-query")).status).toBe(400);
    expect((await req("/dns-query", { method: "PUT", body: "x" })).status).toBe(405);
    expect((await req("/dns-query", { method: "POST", headers: { "content-type": "text/plain" }, body: "x" })).status).toBe(415);
    expect((await req("/dns-query", { method: "POST", headers: { "content-type": "application/dns-message" }, body: "short" })).status).toBe(400);
    expect((await req("/elsewhere")).status).toBe(404);
  });

  it("serves the JSON API with ECS", async () => {
    const res = await req("/resolve?name=director.geo.example.org&type=TXT&edns_client_subnet=175.16.199.0/24");
    expect(res.headers.get("content-type")).toBe("application/dns-json");
    const body = (await res.json()) as { Status: number; Answer: { data: string; type: number }[]; edns_client_subnet: string };
    expect(body.Status).toBe(0);
    expect(body.Answer[0].type).toBe(16);
    expect(body.Answer[0].data).toContain("city changchun country cn chn state as");
    expect(body.edns_client_subnet).toMatch(/^175\.16\.199\.0\/24\/\d+$/);
    const nx = (await (await req("/resolve?name=nope.geo.example.org")).json()) as { Status: number; Authority: unknown[] };
    expect(nx.Status).toBe(3);
    expect(nx.Authority).toHaveLength(1);
    expect((await req("/resolve?type=A")).status).toBe(400);
  });

  it("believes X-Forwarded-For only from trusted proxies", async () => {
    const headers = { "x-forwarded-for": "89.160.20.112" };
    const untrusted = await req(`/dns-query?dns=${b64(q("director.geo.example.org"))}`, { headers }, "81.2.69.142:1");
    expect(await txtOf(untrusted)).toContain("ip 81.2.69.142 ");
    const trusted = await req(`/dns-query?dns=${b64(q("director.geo.example.org"))}`, { headers }, "10.1.2.3:1");
    expect(await txtOf(trusted)).toContain("ip 89.160.20.112 ");
  });

  it("strips the port from workerd's clientIp", () => {
    expect(stripPort("1.2.3.4:55")).toBe("1.2.3.4");
    expect(stripPort("[2001:db8::1]:55")).toBe("2001:db8::1");
    expect(stripPort("2001:db8::1")).toBe("2001:db8::1");
  });
});
