/**
 * The reply cache behind answerQuery: a replayed reply is byte for byte what the long way gives (ID and the
 * question's case patched in) for every query shape, client, ECS option, DO bit and EDNS size; it is dropped when
 * edge health, the signing window or the challenge records move, made anew after its TTL, and a reload (a new server,
 * new keys) starts empty. Fake clocks throughout.
 */
import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { HealthMonitor } from "../health/monitor.ts";
import { parseIp } from "../net/ip.ts";
import { fixture, testGeoIp } from "../../test/support/dns-server.ts";
import { TEST_ZONE_TOML } from "../../test/support/dns-zone.ts";
import { answerQuery, replyStats, type Answer, type Server } from "./answer.ts";
import { ChallengeStore } from "./challenges.ts";
import { ALGORITHM_ECDSAP256SHA256, generateKeyPem, keyTag, zoneKeyFromPem, type ZoneKey } from "./dnssec/keys.ts";
import { ZoneSigner } from "./dnssec/sign.ts";
import { encodeName } from "./names.ts";
import { buildZone } from "./zone.ts";

const geoip = testGeoIp();
const VALIDITY = 14 * 86400;

/** A signed server over the test zone with health, challenge records and one clock (ms) for everything. */
function signedServer(keys: ZoneKey[], clock: { now: number }): Server & { health: HealthMonitor; challenges: ChallengeStore } {
  const config = parseConfig(`${TEST_ZONE_TOML}\n[dns.dnssec]\nkeys = [ { file = "k.pem", role = "csk" } ]\n`);
  const zone = buildZone(config, keys.map((k) => ({ flags: k.flags, algorithm: ALGORITHM_ECDSAP256SHA256, key: k.rdata.subarray(4) })));
  const now = () => clock.now;
  const health = new HealthMonitor(
    config.edges.map((e) => ({ name: e.name })),
    { intervalMs: 1000, timeoutMs: 100, downAfter: 1, upAfter: 1, minUp: 1 },
    async () => new Response("ok"),
    now,
  );
  const challenges = new ChallengeStore(10, now);
  return { zone, geoip, udpSize: 1232, dnssec: new ZoneSigner(encodeName(zone.origin), keys, VALIDITY, now), health, challenges, now };
}

const csk = zoneKeyFromPem(fixture("dnssec-test-csk.pem"), "csk", true, "test");

interface Shape {
  name: string;
  type: string;
  edns?: { size: number; dnssec?: boolean; ecs?: [string, number] };
  rd?: boolean;
  cd?: boolean;
}

function encode(s: Shape, id: number): Uint8Array {
  const additionals = s.edns
    ? [
        {
          name: ".",
          type: "OPT",
          udpPayloadSize: s.edns.size,
          flags: s.edns.dnssec ? dnsPacket.DNSSEC_OK : 0,
          options: s.edns.ecs ? [{ code: 8, ip: s.edns.ecs[0], sourcePrefixLength: s.edns.ecs[1], scopePrefixLength: 0 }] : [],
        },
      ]
    : [];
  const flags = (s.rd === false ? 0 : dnsPacket.RECURSION_DESIRED) | (s.cd ? dnsPacket.CHECKING_DISABLED : 0);
  return dnsPacket.encode({ id, type: "query", flags, questions: [{ name: s.name, type: s.type as never }], additionals: additionals as never });
}

/** The name with its letters' case mixed by `seed` (0x20 randomisation, as resolvers do). */
function mixCase(name: string, seed: number): string {
  return [...name].map((c, i) => (((seed >> i % 16) & 1) ? c.toUpperCase() : c)).join("");
}

/**
 * A reply's bytes in hex with the RRSIGs' signature bytes zeroed: ECDSA signs with a random nonce, so the long way's
 * signatures differ from the kept ones while everything else must not (dns-packet's signature is a view of the copy).
 */
function hexWithoutSignatures(bytes: Uint8Array): string {
  const copy = Buffer.from(bytes);
  const p = dnsPacket.decode(copy);
  for (const r of [...(p.answers ?? []), ...(p.authorities ?? []), ...(p.additionals ?? [])])
    if (r.type === "RRSIG") (r as dnsPacket.RrsigAnswer).data.signature.fill(0);
  return copy.toString("hex");
}

/** What an answer tells the host and the observer besides its bytes. */
const fields = (a: Answer) => ({
  rcode: a.rcode,
  ttl: a.ttl,
  tailored: a.tailored,
  requestedSize: a.requestedSize,
  qtype: a.qtype,
  labels: a.question?.labels,
  question: a.question && Buffer.from(a.question.bytes).toString("hex"),
  ecs: a.ecs,
  edges: a.edges?.map((e) => e.name),
  records: a.records,
});

const NAMES = ["director.geo.example.org", "www.geo.example.org", "geo.example.org", "ns1.geo.example.org", "a.b.deep.geo.example.org", "b.deep.geo.example.org", "nope.geo.example.org", "big.geo.example.org"];
const TYPES = ["A", "AAAA", "TXT", "SOA", "NS", "MX", "ANY", "DNSKEY", "CNAME"];
const EDNS: Shape["edns"][] = [
  undefined,
  { size: 1232 },
  { size: 4096, dnssec: true },
  { size: 512, dnssec: true },
  { size: 1232, ecs: ["81.2.69.160", 27] },
  { size: 1232, ecs: ["81.2.69.0", 24] },
  { size: 1232, dnssec: true, ecs: ["175.16.199.0", 24] },
  { size: 1232, ecs: ["2a02:d1c0::", 48] },
  { size: 1232, ecs: ["0.0.0.0", 0] },
];
const CLIENTS = ["81.2.69.142", "216.160.83.56", "175.16.199.1", "2001:480::1", null];

describe("the reply cache", () => {
  it("replays replies byte for byte as the long way makes them (ID and case patched), for every shape, client and option", () => {
    const clock = { now: 1_700_000_000_000 };
    const cached = signedServer([csk], clock);
    let compared = 0;
    let seed = 1;
    let turn = 0;
    for (const name of NAMES)
      for (const type of TYPES)
        for (const edns of EDNS) {
          // Each shape from two clients, the first asking again: kept, and per client where the client decides.
          const c1 = CLIENTS[turn++ % CLIENTS.length];
          const c2 = CLIENTS[(turn + 1) % CLIENTS.length];
          const variant = [{}, { rd: false }, { cd: true }][turn % 3];
          for (const client of [c1, c2, c1]) {
            seed = (seed * 1103515245 + 12345) & 0x7fffffff;
            const q = encode({ name: mixCase(name, seed), type, edns, ...variant }, seed & 0xffff);
            const peer = client ? parseIp(client) : null;
            const got = answerQuery(q, peer, cached)!;
            // The long way: the same server's state in a new server object (a new, empty cache).
            const fresh = answerQuery(q, peer, { ...cached })!;
            expect(hexWithoutSignatures(got.bytes), `${name} ${type} ${JSON.stringify(edns)} ${client}`).toBe(hexWithoutSignatures(fresh.bytes));
            expect(fields(got)).toEqual(fields(fresh));
            compared++;
          }
        }
    const stats = replyStats(cached);
    expect(compared).toBe(NAMES.length * TYPES.length * EDNS.length * 3);
    // The third ask of every shape is a repeat; the second too where the client does not decide the reply.
    expect(stats.hits).toBeGreaterThan(compared / 3);
    expect(stats.hits + stats.misses).toBe(compared);
  }, 60_000);

  it("answers another client network, ECS subnet, DO bit or EDNS size as decided for it, not from another's reply", () => {
    const server = signedServer([csk], { now: 1_700_000_000_000 });
    const a = (shape: Shape, client = "81.2.69.142") => dnsPacket.decode(Buffer.from(answerQuery(encode(shape, 7), parseIp(client), server)!.bytes));
    const first = (p: dnsPacket.DecodedPacket) => (p.answers![0] as { data: string }).data;
    const director = { name: "director.geo.example.org", type: "A" };
    expect(first(a(director, "81.2.69.142"))).toBe("192.0.2.21"); // London
    expect(first(a(director, "175.16.199.1"))).toBe("192.0.2.23"); // Changchun
    expect(first(a({ ...director, edns: { size: 1232, ecs: ["81.2.69.160", 27] } }, "175.16.199.1"))).toBe("192.0.2.21");
    expect(first(a({ ...director, edns: { size: 1232, ecs: ["175.16.199.0", 24] } }, "81.2.69.142"))).toBe("192.0.2.23");
    const txt = (p: dnsPacket.DecodedPacket) => String((p.answers![0] as dnsPacket.TxtAnswer).data);
    expect(txt(a({ name: "director.geo.example.org", type: "TXT" }, "81.2.69.142"))).toMatch(/^ip 81\.2\.69\.142 /);
    expect(txt(a({ name: "director.geo.example.org", type: "TXT" }, "81.2.69.143"))).toMatch(/^ip 81\.2\.69\.143 /);
    const signed = a({ ...director, edns: { size: 1232, dnssec: true } });
    expect(signed.answers!.map((r) => r.type)).toEqual(["A", "A", "RRSIG"]);
    expect(a({ ...director, edns: { size: 1232 } }).answers!.map((r) => r.type)).toEqual(["A", "A"]);
    const size = (edns: Shape["edns"]) => answerQuery(encode({ name: "big.geo.example.org", type: "TXT", edns }, 1), parseIp("192.0.2.1"), server)!.requestedSize;
    expect([size({ size: 4096 }), size({ size: 1232 }), size(undefined)]).toEqual([4096, 1232, 512]);
  });

  it("drops replies when edge health changes", () => {
    const server = signedServer([csk], { now: 1_700_000_000_000 });
    const ask = () => (dnsPacket.decode(Buffer.from(answerQuery(encode({ name: "director.geo.example.org", type: "A" }, 1), parseIp("81.2.69.142"), server)!.bytes)).answers ?? []).map((r) => (r as { data: string }).data);
    expect(ask()).toEqual(["192.0.2.21", "192.0.2.22"]);
    expect(ask()).toEqual(["192.0.2.21", "192.0.2.22"]);
    expect(replyStats(server).hits).toBe(1);
    server.health.setDrained("gb-lon", true);
    expect(ask()).toEqual(["192.0.2.22", "192.0.2.23"]);
    server.health.setDrained("gb-lon", false);
    expect(ask()).toEqual(["192.0.2.21", "192.0.2.22"]);
  });

  it("drops replies when a challenge record comes or goes", () => {
    const server = signedServer([csk], { now: 1_700_000_000_000 });
    const ask = () => answerQuery(encode({ name: "_acme-challenge.www.geo.example.org", type: "TXT" }, 1), parseIp("192.0.2.1"), server)!;
    expect(ask().rcode).toBe(3); // NXDOMAIN, kept
    expect(ask().rcode).toBe(3);
    server.challenges.add("_acme-challenge.www.geo.example.org", "token-1", 60);
    const p = dnsPacket.decode(Buffer.from(ask().bytes));
    expect(p.answers!.map((r) => String((r as dnsPacket.TxtAnswer).data))).toEqual(["token-1"]);
  });

  it("keeps a reply for its TTL, then makes it anew", () => {
    const clock = { now: 1_700_000_000_000 };
    const server = signedServer([csk], clock);
    const ask = () => answerQuery(encode({ name: "ns1.geo.example.org", type: "A" }, 1), parseIp("192.0.2.1"), server)!;
    expect(ask().ttl).toBe(30);
    clock.now += 29_999;
    ask();
    expect(replyStats(server)).toMatchObject({ hits: 1, misses: 1 });
    clock.now += 1;
    ask();
    expect(replyStats(server)).toMatchObject({ hits: 1, misses: 2 });
    ask();
    expect(replyStats(server)).toMatchObject({ hits: 2, misses: 2 });
  });

  it("keeps signed replies with their signatures until the signing window moves", () => {
    const half = (VALIDITY / 2) * 1000;
    const clock = { now: Math.ceil(1_700_000_000_000 / half) * half - 1000 }; // a second before the window moves
    const server = signedServer([csk], clock);
    const inception = () => {
      const p = dnsPacket.decode(Buffer.from(answerQuery(encode({ name: "ns1.geo.example.org", type: "A", edns: { size: 1232, dnssec: true } }, 1), parseIp("192.0.2.1"), server)!.bytes));
      return (p.answers!.find((r) => r.type === "RRSIG") as dnsPacket.RrsigAnswer).data.inception;
    };
    const before = inception();
    expect(inception()).toBe(before);
    expect(replyStats(server).hits).toBe(1);
    clock.now += 1000; // the next window (the reply's TTL has not run out): signatures made anew, a later inception
    expect(inception()).toBe(before + VALIDITY / 2);
  });

  it("starts empty after a reload: a key roll signs with the new key at once", () => {
    const clock = { now: 1_700_000_000_000 };
    const next = zoneKeyFromPem(generateKeyPem(), "csk", true, "next");
    const tagOf = (server: Server) => {
      const p = dnsPacket.decode(Buffer.from(answerQuery(encode({ name: "director.geo.example.org", type: "A", edns: { size: 1232, dnssec: true } }, 1), parseIp("81.2.69.142"), server)!.bytes));
      return (p.answers!.find((r) => r.type === "RRSIG") as dnsPacket.RrsigAnswer).data.keyTag;
    };
    const old = signedServer([csk], clock);
    expect(tagOf(old)).toBe(keyTag(csk.rdata));
    expect(tagOf(old)).toBe(keyTag(csk.rdata));
    const rolled = signedServer([next], clock); // what a reload with the new key builds
    expect(tagOf(rolled)).toBe(keyTag(next.rdata));
    expect(keyTag(next.rdata)).not.toBe(keyTag(csk.rdata));
  });
});
