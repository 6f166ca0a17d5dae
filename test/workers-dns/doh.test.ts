/**
 * The GeoDNS worker (wrangler.toml [env.dns], src/dns/worker.ts) inside Miniflare/workerd: real DoH GET and POST and
 * JSON requests through `SELF.fetch`, with the client address in `cf-connecting-ip` (what Miniflare sets from the
 * socket) and the MaxMind test databases bound as GEOIP_CITY / GEOIP_ASN (see vitest.config.ts).
 */
import { Buffer } from "node:buffer";
import { SELF } from "cloudflare:test";
import * as dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";

const DIRECTOR = "director.geo.example.org";

function query(name: string, type: string, ecs?: [string, number]): Buffer {
  const additionals = ecs
    ? [{ name: ".", type: "OPT", udpPayloadSize: 4096, flags: 0, options: [{ code: 8, ip: ecs[0], sourcePrefixLength: ecs[1], scopePrefixLength: 0 }] }]
    : [];
  return dnsPacket.encode({
    type: "query",
    id: 0,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as never }],
    additionals: additionals as dnsPacket.Answer[],
  });
}

const get = (q: Uint8Array, client: string) =>
  SELF.fetch(`https://dns.example/dns-query?dns=${Buffer.from(q).toString("base64url")}`, {
    headers: { accept: "application/dns-message", "cf-connecting-ip": client },
  });
const post = (q: Uint8Array, client: string) =>
  SELF.fetch("https://dns.example/dns-query", {
    method: "POST",
    headers: { "content-type": "application/dns-message", accept: "application/dns-message", "cf-connecting-ip": client },
    body: q,
  });

async function decode(res: Response) {
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/dns-message");
  return dnsPacket.decode(Buffer.from(await res.arrayBuffer())) as dnsPacket.DecodedPacket & { rcode: string };
}
const txtOf = (p: dnsPacket.DecodedPacket) =>
  ((p.answers![0] as dnsPacket.TxtAnswer).data as Buffer[]).map((b) => b.toString("utf8")).join("");
const dataOf = (p: dnsPacket.DecodedPacket) => p.answers!.map((a) => (a as { data: unknown }).data);

describe("GeoDNS worker under Miniflare", () => {
  it.each([
    ["81.2.69.142", "ip 81.2.69.142 v4 city london country gb gbr state eu region eng name unknown as unknown"],
    ["89.160.20.112", "ip 89.160.20.112 v4 city linköping country se swe state eu region e name bredband2 ab as as29518"],
    ["216.160.83.56", "ip 216.160.83.56 v4 city milton country us usa state na region wa name unknown as as209"],
  ])("DoH GET: the director TXT for client %s", async (client, expected) => {
    const res = await get(query(DIRECTOR, "TXT"), client);
    expect(res.headers.get("cache-control")).toBe("private, max-age=30");
    const p = await decode(res);
    expect(p.flag_aa).toBe(true);
    expect(txtOf(p)).toBe(expected);
  });

  it("DoH POST: the nearest edges first for the connecting address, per family", async () => {
    expect(dataOf(await decode(await post(query(DIRECTOR, "A"), "81.2.69.142")))).toEqual(["192.0.2.21", "192.0.2.22"]);
    expect(dataOf(await decode(await post(query(DIRECTOR, "AAAA"), "216.160.83.56")))).toEqual(["2001:db8:22::1", "2001:db8:21::1"]);
    // Changchun: Beijing, then Seattle (7,884 km) before London (8,184 km).
    expect(dataOf(await decode(await post(query(DIRECTOR, "A"), "175.16.199.1")))).toEqual(["192.0.2.23", "192.0.2.22"]);
    // Not in the database: the default set first.
    expect(dataOf(await decode(await post(query(DIRECTOR, "A"), "192.0.2.1")))[0]).toBe("192.0.2.22");
  });

  it("ECS wins over the connecting address and comes back with the GeoIP block as scope", async () => {
    const p = await decode(await post(query(DIRECTOR, "A", ["89.160.20.112", 32]), "216.160.83.56"));
    expect(dataOf(p)).toEqual(["192.0.2.21", "192.0.2.23"]); // Linköping: London, then Beijing (6,500 km) before Seattle (7,600 km)
    const opt = p.additionals!.find((a) => a.type === "OPT") as unknown as { options: { sourcePrefixLength: number; scopePrefixLength: number }[] };
    expect(opt.options[0].sourcePrefixLength).toBe(32);
    expect(opt.options[0].scopePrefixLength).toBeGreaterThan(0);
  });

  it("follows the CNAME and answers NXDOMAIN with the SOA and a public max-age", async () => {
    const www = await decode(await get(query("www.geo.example.org", "A"), "81.2.69.142"));
    expect(www.answers!.map((a) => a.type)).toEqual(["CNAME", "A", "A"]);
    const res = await get(query("nope.geo.example.org", "A"), "81.2.69.142");
    expect(res.headers.get("cache-control")).toBe("max-age=30");
    const nx = await decode(res);
    expect(nx.rcode).toBe("NXDOMAIN");
    expect(nx.authorities![0].type).toBe("SOA");
  });

  it("serves the JSON API", async () => {
    const res = await SELF.fetch(`https://dns.example/resolve?name=${DIRECTOR}&type=TXT`, { headers: { "cf-connecting-ip": "89.160.20.112" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/dns-json");
    const body = (await res.json()) as { Status: number; Answer: { name: string; type: number; data: string }[] };
    expect(body.Status).toBe(0);
    expect(body.Answer[0]).toMatchObject({ name: `${DIRECTOR}.`, type: 16 });
    expect(body.Answer[0].data).toContain("city linköping country se swe state eu");
    const a = (await (
      await SELF.fetch(`https://dns.example/resolve?name=${DIRECTOR}&type=A&edns_client_subnet=175.16.199.0/24`, {
        headers: { "cf-connecting-ip": "81.2.69.142" },
      })
    ).json()) as { Answer: { data: string }[]; edns_client_subnet: string };
    expect(a.Answer.map((x) => x.data)).toEqual(["192.0.2.23", "192.0.2.22"]);
    expect(a.edns_client_subnet).toMatch(/^175\.16\.199\.0\/24\/\d+$/);
  });

  it("answers bad HTTP with 400 / 405 / 415", async () => {
    expect((await SELF.fetch("https://dns.example/dns-query?dns=!!!")).status).toBe(400);
    expect((await SELF.fetch("https://dns.example/dns-query", { method: "PUT", body: "x" })).status).toBe(405);
    expect((await SELF.fetch("https://dns.example/dns-query", { method: "POST", headers: { "content-type": "text/plain" }, body: "x" })).status).toBe(415);
  });
});
