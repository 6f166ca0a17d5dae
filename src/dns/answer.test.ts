import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";
import { parseIp } from "../net/ip.ts";
import { answerQuery } from "./answer.ts";
import { testServer } from "../../test/support/dns-server.ts";
import { TEST_ZONE_TOML } from "../../test/support/dns-zone.ts";

const server = testServer();
type Q = { name: string; type?: string; ecs?: [string, number]; edns?: boolean; id?: number; flags?: number };

function query(q: Q): Uint8Array {
  const additionals: unknown[] = [];
  if (q.ecs || q.edns)
    additionals.push({
      name: ".",
      type: "OPT",
      udpPayloadSize: 4096,
      flags: 0,
      options: q.ecs ? [{ code: 8, ip: q.ecs[0], sourcePrefixLength: q.ecs[1], scopePrefixLength: 0 }] : [],
    });
  return dnsPacket.encode({
    id: q.id ?? 4321,
    type: "query",
    flags: q.flags ?? dnsPacket.RECURSION_DESIRED,
    questions: [{ name: q.name, type: (q.type ?? "A") as never }],
    additionals: additionals as dnsPacket.Answer[],
  });
}

/** A query for a type number (dns-packet cannot encode every number by name). */
function typed(name: string, type: number): Uint8Array {
  const b = Buffer.from(query({ name, type: "A" }));
  b.writeUInt16BE(type, b.length - 4);
  return b;
}

function ask(q: Q | Uint8Array, client = "81.2.69.142") {
  const a = answerQuery(q instanceof Uint8Array ? q : query(q), parseIp(client), server);
  if (!a) throw new Error("dropped");
  return { ...a, p: dnsPacket.decode(Buffer.from(a.bytes)) as dnsPacket.DecodedPacket & { rcode: string } };
}
const txt = (p: dnsPacket.DecodedPacket) => ((p.answers?.[0] as dnsPacket.TxtAnswer).data as Buffer[]).map(String).join("");
const data = (p: dnsPacket.DecodedPacket, i = 0) => (p.answers![i] as { data: unknown }).data;
const ecsOf = (p: dnsPacket.DecodedPacket) =>
  ((p.additionals?.find((a) => a.type === "OPT") as unknown as { options: { scopePrefixLength: number; sourcePrefixLength: number }[] })
    ?.options ?? [])[0];

describe("answerQuery", () => {
  it("fills the director TXT from City and ASN data for the ECS address", () => {
    const { p, tailored } = ask({ name: "director.geo.example.org", type: "TXT", ecs: ["89.160.20.112", 28] });
    expect(txt(p)).toBe("ip 89.160.20.112 v4 city linköping country se swe state eu region e name bredband2 ab as as29518");
    expect(tailored).toBe(true);
    expect(ecsOf(p).scopePrefixLength).toBeGreaterThan(0);
  });

  it("locates the connecting address without ECS, with unknown for missing values", () => {
    const { p } = ask({ name: "director.geo.example.org", type: "TXT" }, "216.160.83.56");
    expect(txt(p)).toBe("ip 216.160.83.56 v4 city milton country us usa state na region wa name unknown as as209");
  });

  it("answers the nearest edges first, per family", () => {
    expect(ask({ name: "director.geo.example.org" }, "81.2.69.142").p.answers!.map((a) => (a as { data: unknown }).data)).toEqual(["192.0.2.21", "192.0.2.22"]);
    expect(ask({ name: "director.geo.example.org" }, "175.16.199.1").p.answers!.map((a) => (a as { data: unknown }).data)).toEqual(["192.0.2.23", "192.0.2.22"]); // Changchun: Seattle 7,884 km, London 8,184 km
    expect(ask({ name: "director.geo.example.org", type: "AAAA" }, "216.160.83.56").p.answers!.map((a) => (a as { data: unknown }).data)[0]).toBe("2001:db8:22::1");
  });

  it("uses the default set when the client cannot be located, and ECS /0 does not tailor", () => {
    expect(ask({ name: "director.geo.example.org" }, "192.0.2.1").p.answers!.map((a) => (a as { data: unknown }).data)[0]).toBe("192.0.2.22");
    const zero = ask({ name: "director.geo.example.org", ecs: ["0.0.0.0", 0] }, "81.2.69.142");
    expect(zero.p.answers!.map((a) => (a as { data: unknown }).data)[0]).toBe("192.0.2.22");
    expect(ecsOf(zero.p).scopePrefixLength).toBe(0);
    expect(zero.tailored).toBe(false);
  });

  it("echoes ID, RD and the question's case, sets AA and not RA", () => {
    const { p } = ask({ name: "DiReCtOr.GEO.example.ORG", id: 777 });
    expect(p.id).toBe(777);
    expect(p.questions![0].name).toBe("DiReCtOr.GEO.example.ORG");
    expect(p.flag_aa && p.flag_rd && !p.flag_ra).toBe(true);
  });

  it("tells NXDOMAIN from NODATA (also empty non-terminals), both with the SOA", () => {
    const nx = ask({ name: "nope.geo.example.org" });
    expect(nx.p.rcode).toBe("NXDOMAIN");
    expect(nx.p.authorities![0].type).toBe("SOA");
    expect(nx.ttl).toBe(30);
    for (const name of ["ns1.geo.example.org", "b.deep.geo.example.org", "deep.geo.example.org"]) {
      const nodata = ask({ name, type: "AAAA" });
      expect(nodata.p.rcode).toBe("NOERROR");
      expect(nodata.p.answers).toHaveLength(0);
      expect(nodata.p.authorities![0].type).toBe("SOA");
    }
  });

  it("follows a CNAME into the director and marks the answer tailored", () => {
    const { p, tailored } = ask({ name: "www.geo.example.org" });
    expect(p.answers!.map((a) => a.type)).toEqual(["CNAME", "A", "A"]);
    expect(tailored).toBe(true);
  });

  it("answers apex SOA, NS with in-zone glue, MX", () => {
    expect(ask({ name: "geo.example.org", type: "SOA" }).p.answers![0].type).toBe("SOA");
    const ns = ask({ name: "geo.example.org", type: "NS" }).p;
    expect(ns.answers).toHaveLength(2);
    expect((ns.additionals!.find((a) => a.type === "A") as { data: unknown } | undefined)?.data).toBe("192.0.2.53");
    expect(ask({ name: "geo.example.org", type: "MX" }).p.answers!.map((a) => (a as { data: unknown }).data)[0]).toEqual({ preference: 10, exchange: "mail.geo.example.org" });
  });

  it("refuses names outside the zone without AA, and other classes", () => {
    const r = ask({ name: "example.com" });
    expect(r.p.rcode).toBe("REFUSED");
    expect(r.p.flag_aa).toBe(false);
    expect(ask({ name: "xgeo.example.org" }).p.rcode).toBe("REFUSED");
  });

  it("answers FORMERR, NOTIMP and BADVERS", () => {
    const two = Buffer.from(query({ name: "director.geo.example.org" }));
    two.writeUInt16BE(2, 4);
    expect(ask(two).p.rcode).toBe("FORMERR");
    const notify = Buffer.from(query({ name: "director.geo.example.org" }));
    notify[2] = (notify[2] & 0x87) | (4 << 3);
    expect(ask(notify).p.rcode).toBe("NOTIMP");
    const v1 = Buffer.from(query({ name: "director.geo.example.org", edns: true }));
    v1[v1.length - 5] = 1; // OPT TTL: version byte
    const bad = ask(v1).p as unknown as { additionals: { extendedRcode: number }[]; rcode: string };
    expect(bad.additionals[0].extendedRcode).toBe(1); // BADVERS = 16
    const badEcs = Buffer.from(query({ name: "director.geo.example.org", ecs: ["81.2.69.0", 24] }));
    badEcs[badEcs.length - 4] = 5; // SCOPE must be 0 in a query
    expect(ask(badEcs).p.rcode).toBe("FORMERR");
  });

  it("answers data types above 255 (CAA, TYPE1234: NODATA) and NOTIMP only for meta types 128–255 but ANY", () => {
    const caaZone = testServer(TEST_ZONE_TOML.replace('records = [', `records = [ { name = "@", type = "CAA", value = '0 issue "letsencrypt.org"' },`));
    const caa = answerQuery(query({ name: "geo.example.org", type: "CAA" }), null, caaZone)!;
    const p = dnsPacket.decode(Buffer.from(caa.bytes)) as dnsPacket.DecodedPacket & { rcode: string };
    expect([p.rcode, p.answers!.map((a) => a.type)]).toEqual(["NOERROR", ["CAA"]]);
    expect(data(p)).toMatchObject({ flags: 0, tag: "issue", value: "letsencrypt.org" });
    for (const type of [257, 256, 1234, 65280]) {
      const r = ask(typed("ns1.geo.example.org", type));
      expect([r.p.rcode, r.p.flag_aa, r.p.answers, r.p.authorities![0].type], `TYPE${type}`).toEqual(["NOERROR", true, [], "SOA"]);
    }
    expect(ask(typed("nope.geo.example.org", 1234)).p.rcode).toBe("NXDOMAIN");
    for (const type of [128, 249, 250, 254]) expect(ask(typed("ns1.geo.example.org", type)).p.rcode, `TYPE${type}`).toBe("NOTIMP");
  });

  it("answers names that do not exist from a wildcard below their closest encloser (RFC 4592)", () => {
    const wild = testServer(
      TEST_ZONE_TOML.replace("records = [", 'records = [ { name = "*.cdn", type = "A", value = "192.0.2.80" }, { name = "*.alias", type = "CNAME", value = "director" },'),
    );
    const at = (name: string, type = "A") => {
      const a = answerQuery(query({ name, type }), parseIp("81.2.69.142"), wild)!;
      return dnsPacket.decode(Buffer.from(a.bytes)) as dnsPacket.DecodedPacket & { rcode: string };
    };
    for (const name of ["x.cdn.geo.example.org", "A.b.CDN.geo.example.org", "*.cdn.geo.example.org"]) {
      const p = at(name);
      expect([p.rcode, p.answers!.map((a) => [a.name, (a as { data: unknown }).data])], name).toEqual(["NOERROR", [[name, "192.0.2.80"]]]);
    }
    const nodata = at("x.cdn.geo.example.org", "AAAA");
    expect([nodata.rcode, nodata.answers, nodata.authorities![0].type]).toEqual(["NOERROR", [], "SOA"]);
    expect([at("cdn.geo.example.org").rcode, at("cdn.geo.example.org").answers]).toEqual(["NOERROR", []]); // the encloser itself
    expect(at("x.alias.geo.example.org").answers!.map((a) => a.type)).toEqual(["CNAME", "A", "A"]);
    // No wildcard below the closest encloser: NXDOMAIN, also below a wildcard's own name.
    for (const name of ["x.ns1.geo.example.org", "nope.geo.example.org", "a.*.cdn.geo.example.org"]) expect(at(name).rcode, name).toBe("NXDOMAIN");
  });

  it("drops responses and runts", () => {
    const resp = Buffer.from(query({ name: "director.geo.example.org" }));
    resp[2] |= 0x80;
    expect(answerQuery(resp, null, server)).toBeNull();
    expect(answerQuery(new Uint8Array(5), null, server)).toBeNull();
  });

  it("answers ANY with RFC 8482 HINFO", () => {
    expect(ask({ name: "director.geo.example.org", type: "ANY" }).p.answers![0].type).toBe("HINFO");
  });

  it("splits a long TXT into 255-byte strings", () => {
    const { p } = ask({ name: "big.geo.example.org", type: "TXT" });
    expect(((p.answers![0] as dnsPacket.TxtAnswer).data as Buffer[]).map((b) => b.length)).toEqual([255, 255, 190]);
  });

  it("breaks ties the same way for A and AAAA and for every address of one client network", () => {
    // 192.0.2.x and 198.51.100.x are not in the test database: the default set (us-sea), then a weighted draw.
    const v6of = (a: unknown) => `2001:db8:${String(a).split(".")[3]}::1`;
    const seconds = new Set<unknown>();
    for (let net = 0; net < 64; net++) {
      const client = `198.51.${net}.7`;
      const a = ask({ name: "director.geo.example.org" }, client).p.answers!.map((x) => (x as { data: unknown }).data);
      const aaaa = ask({ name: "director.geo.example.org", type: "AAAA" }, client).p.answers!.map((x) => (x as { data: unknown }).data);
      expect(a[0]).toBe("192.0.2.22");
      expect(aaaa).toEqual(a.map(v6of));
      const neighbour = ask({ name: "director.geo.example.org" }, `198.51.${net}.200`).p.answers!.map((x) => (x as { data: unknown }).data);
      expect(neighbour).toEqual(a);
      seconds.add(a[1]);
    }
    expect(seconds).toEqual(new Set(["192.0.2.21", "192.0.2.23"])); // different networks spread
  });

  it("scopes an ECS answer to the client network when a draw decided it", () => {
    const drawn = ask({ name: "director.geo.example.org", ecs: ["198.51.100.0", 24] });
    expect(ecsOf(drawn.p).scopePrefixLength).toBe(24);
    const short = ask({ name: "director.geo.example.org", ecs: ["198.51.0.0", 16] });
    // The seed only used the /16 the client revealed (the rest is the database's own block for the address).
    expect(ecsOf(short.p).scopePrefixLength).toBeGreaterThanOrEqual(16);
    expect(ecsOf(short.p).scopePrefixLength).toBeLessThan(24);
    const nearest = ask({ name: "director.geo.example.org", ecs: ["81.2.69.142", 32] });
    expect(ecsOf(nearest.p).scopePrefixLength).toBe(31); // distance decided: the GeoIP block
  });
});
