/** Signed answers from the answer core: what a DO query gets, what it does not without DO, and what is cached. */
import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../config/config.ts";
import { parseIp } from "../../net/ip.ts";
import { fixture, testGeoIp } from "../../../test/support/dns-server.ts";
import { TEST_ZONE_TOML } from "../../../test/support/dns-zone.ts";
import { answerQuery, type Server } from "../answer.ts";
import { ChallengeStore } from "../challenges.ts";
import { encodeName } from "../names.ts";
import { buildZone } from "../zone.ts";
import { ALGORITHM_ECDSAP256SHA256, zoneKeyFromPem } from "./keys.ts";
import { ZoneSigner } from "./sign.ts";

const key = zoneKeyFromPem(fixture("dnssec-test-csk.pem"), "csk", true, "test");
const config = parseConfig(`${TEST_ZONE_TOML.replace("records = [", 'records = [ { name = "*.cdn", type = "A", value = "192.0.2.80" },')}\n[dns.dnssec]\nkeys = [ { file = "csk.pem", role = "csk" } ]\n`);
const zone = buildZone(config, [{ flags: key.flags, algorithm: ALGORITHM_ECDSAP256SHA256, key: key.rdata.subarray(4) }]);
const signer = new ZoneSigner(encodeName(zone.origin), [key], 14 * 86400);
const challenges = new ChallengeStore(10);
const server: Server = { zone, geoip: testGeoIp(), udpSize: 1232, dnssec: signer, challenges };

type P = dnsPacket.DecodedPacket & { rcode: string };
function ask(name: string, type: string, dnssec = true, client = "81.2.69.142"): P {
  const q = dnsPacket.encode({
    type: "query",
    id: 9,
    questions: [{ name, type: type as never }],
    additionals: [{ name: ".", type: "OPT", udpPayloadSize: 1232, flags: dnssec ? dnsPacket.DNSSEC_OK : 0, options: [] } as never],
  });
  return dnsPacket.decode(Buffer.from(answerQuery(q, parseIp(client), server)!.bytes)) as P;
}
const types = (rrs: dnsPacket.Answer[] | undefined) => (rrs ?? []).map((r) => r.type);
const doBit = (p: P) => ((p.additionals!.find((a) => a.type === "OPT") as unknown as { flags: number }).flags & dnsPacket.DNSSEC_OK) !== 0;

describe("signed answers", () => {
  it("signs the director's answers, static records and the DNSKEY set for DO queries only", () => {
    const a = ask("director.geo.example.org", "A");
    expect(types(a.answers)).toEqual(["A", "A", "RRSIG"]);
    expect(doBit(a)).toBe(true);
    expect(types(ask("director.geo.example.org", "TXT").answers)).toEqual(["TXT", "RRSIG"]);
    expect(types(ask("www.geo.example.org", "AAAA").answers)).toEqual(["CNAME", "RRSIG", "AAAA", "AAAA", "RRSIG"]);
    expect(types(ask("geo.example.org", "DNSKEY").answers)).toEqual(["DNSKEY", "RRSIG"]);
    const plain = ask("director.geo.example.org", "A", false);
    expect(types(plain.answers)).toEqual(["A", "A"]);
    expect(doBit(plain)).toBe(false);
    expect(types(ask("geo.example.org", "DNSKEY", false).answers)).toEqual(["DNSKEY"]);
  });

  it("proves NXDOMAIN (keeping the RCODE) and NODATA with signed NSECs", () => {
    const nx = ask("nope.geo.example.org", "A");
    expect(nx.rcode).toBe("NXDOMAIN");
    expect(types(nx.authorities)).toEqual(["SOA", "RRSIG", "NSEC", "RRSIG", "NSEC", "RRSIG"]);
    const nodata = ask("ns1.geo.example.org", "AAAA");
    expect([nodata.rcode, types(nodata.answers)]).toEqual(["NOERROR", []]);
    expect(types(nodata.authorities)).toEqual(["SOA", "RRSIG", "NSEC", "RRSIG"]);
    const nsec = nodata.authorities![2] as unknown as { name: string; data: { nextDomain: string; rrtypes: string[] } };
    expect(nsec.name).toBe("ns1.geo.example.org");
    expect(nsec.data.rrtypes.sort()).toEqual(["A", "NSEC", "RRSIG"]);
    const plain = ask("nope.geo.example.org", "A", false);
    expect(types(plain.authorities)).toEqual(["SOA"]);
  });

  it("answers a question for NSEC with the name's own signed NSEC, not a NODATA its bitmap contradicts", () => {
    for (const [name, bitmap] of [["ns1.geo.example.org", ["A", "NSEC", "RRSIG"]], ["www.geo.example.org", ["CNAME", "NSEC", "RRSIG"]], ["director.geo.example.org", ["A", "AAAA", "NSEC", "RRSIG", "TXT"]]] as const) {
      const r = ask(name, "NSEC");
      expect([r.rcode, types(r.answers), types(r.authorities)], name).toEqual(["NOERROR", ["NSEC", "RRSIG"], []]);
      const nsec = r.answers![0] as unknown as { name: string; data: { rrtypes: string[] } };
      expect([nsec.name, nsec.data.rrtypes.sort()]).toEqual([name, bitmap]);
    }
    expect(ask("nope.geo.example.org", "NSEC").rcode).toBe("NXDOMAIN");
  });

  it("signs a wildcard's answers as the wildcard's and proves no closer name exists", () => {
    const a = ask("x.y.cdn.geo.example.org", "A");
    expect([a.rcode, types(a.answers), types(a.authorities)]).toEqual(["NOERROR", ["A", "RRSIG"], ["NSEC", "RRSIG"]]);
    expect((a.answers![1] as unknown as { data: { labels: number } }).data.labels).toBe(4); // *.cdn.geo.example.org less "*"
    const closer = a.authorities![0] as unknown as { name: string; data: { nextDomain: string } };
    expect([closer.name < "y.cdn.geo.example.org", closer.data.nextDomain]).toEqual([true, "y\u0000.cdn.geo.example.org"]);
    const nodata = ask("x.cdn.geo.example.org", "TXT");
    expect(types(nodata.authorities)).toEqual(["SOA", "RRSIG", "NSEC", "RRSIG", "NSEC", "RRSIG"]);
    expect((nodata.authorities![2] as unknown as { name: string; data: { rrtypes: string[] } }).data.rrtypes.sort()).toEqual(["A", "NSEC", "RRSIG"]);
    expect(nodata.authorities![2].name).toBe("*.cdn.geo.example.org");
    const nsec = ask("x.cdn.geo.example.org", "NSEC");
    expect([types(nsec.answers), nsec.answers![0].name, types(nsec.authorities)]).toEqual([["NSEC", "RRSIG"], "x.cdn.geo.example.org", ["NSEC", "RRSIG"]]);
  });

  it("signs challenge TXT records, and keeps signatures for repeated questions", () => {
    challenges.add("_acme-challenge.www.geo.example.org", "token", 600);
    expect(types(ask("_acme-challenge.www.geo.example.org", "TXT").answers)).toEqual(["TXT", "RRSIG"]);
    // A change of the challenge records makes new plans: ask everything once under the new version.
    ask("director.geo.example.org", "A");
    ask("nope.geo.example.org", "A");
    ask("ns1.geo.example.org", "AAAA");
    const before = signer.signatures;
    ask("director.geo.example.org", "A");
    ask("director.geo.example.org", "A", true, "81.2.69.150"); // another client, the same edges: the same RRSIG
    ask("nope.geo.example.org", "A");
    ask("ns1.geo.example.org", "AAAA");
    expect(signer.signatures).toBe(before);
    ask("director.geo.example.org", "TXT", true, "81.2.69.150"); // its own TXT: one more signature
    expect(signer.signatures).toBe(before + 1);
  });
});
