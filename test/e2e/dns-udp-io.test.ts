/**
 * The DNS node's UDP I/O: batched through the native addon (recvmmsg/sendmmsg, native/udp-batch.cc) by default, and
 * node:dgram when asked ([dns] udp_io = "dgram") or when the addon does not load (the node says why and answers all
 * the same). A burst from several clients at once lands in shared batches: every answer must go back to the client that
 * asked, with its own ID and question, a runt dropped and a bad question answered FORMERR inside the same batch.
 */
import { createSocket } from "node:dgram";
import * as dnsPacket from "dns-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Answer } from "../../src/dns/answer.ts";
import { startHost, type Host, type HostOptions } from "../../src/node/dns-host.ts";
import { loadUdpBatch } from "../../src/node/udp-batched.ts";
import { startDnsNode, ZONE_TOML, type DnsNode } from "../support/dns-process.ts";

/** Sends every message from one new socket at once; resolves with the replies (by ID) once all came or 3 s passed. */
async function exchange(host: string, port: number, messages: Buffer[], want: number): Promise<Map<number, Buffer>> {
  const sock = createSocket(host.includes(":") ? "udp6" : "udp4");
  const replies = new Map<number, Buffer>();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 3000);
    sock.on("message", (msg) => {
      replies.set(msg.readUInt16BE(0), msg);
      if (replies.size >= want) {
        clearTimeout(timer);
        resolve();
      }
    });
    for (const m of messages) sock.send(m, port, host);
  });
  sock.close();
  return replies;
}

/** A query with random-case name (resolvers' 0x20 check). */
function query(id: number, name: string, type: dnsPacket.RecordType): Buffer {
  const mixed = [...name].map((c, i) => ((id + i) % 3 === 0 ? c.toUpperCase() : c)).join("");
  return dnsPacket.encode({ type: "query", id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: mixed, type }] });
}

describe("the DNS node", () => {
  let node: DnsNode;
  let dgramNode: DnsNode;
  beforeAll(async () => {
    const dgramToml = ZONE_TOML.replace('zone = "geo.example.org"', 'zone = "geo.example.org"\nudp_io = "dgram"');
    node = await startDnsNode();
    dgramNode = await startDnsNode({ toml: dgramToml }); // one after the other: a failed start leaves none unstopped
  });
  afterAll(async () => {
    await node?.stop();
    await dgramNode?.stop();
  });

  it("answers over batched UDP I/O by default and says so in its listener line", async () => {
    expect(loadUdpBatch(), "native/udp-batch.node must be built (npm ci runs native/build.sh)").not.toBeTypeOf("string");
    expect(node.stdout()).toMatch(/^dns udp\+tcp 127\.0\.0\.1:\d+ \(UDP batched: recvmmsg\/sendmmsg\)$/m);
    expect(node.stderr()).not.toMatch(/batched UDP I\/O unavailable/);

    // Three clients, 50 queries each (what the sockets' buffers hold), all sent before any answer is read; plus a runt and a two-question query.
    const names: [string, dnsPacket.RecordType][] = [["director.geo.example.org", "TXT"], ["www.geo.example.org", "A"], ["geo.example.org", "SOA"], ["nx.geo.example.org", "A"]];
    const clients = [0, 1, 2].map(async (c) => {
      const msgs = Array.from({ length: 50 }, (_, i) => query(c * 1000 + i + 1, ...names[i % names.length]));
      const formerr = Buffer.from(msgs[0]);
      formerr.writeUInt16BE(c * 1000 + 999, 0);
      formerr.writeUInt16BE(2, 4); // QDCOUNT 2
      msgs.splice(25, 0, Buffer.from([1, 2, 3]), formerr);
      const replies = await exchange("127.0.0.1", node.dnsPort, msgs, 51);
      return { c, msgs, replies };
    });
    for (const { c, msgs, replies } of await Promise.all(clients)) {
      expect(replies.size).toBe(51);
      for (const m of msgs) {
        if (m.length < 12) continue;
        const id = m.readUInt16BE(0);
        const r = replies.get(id)!;
        expect(Math.floor(id / 1000), `reply ${id} went to client ${c}`).toBe(c);
        if (id % 1000 === 999) {
          expect(r[3] & 0xf).toBe(1); // FORMERR
          continue;
        }
        const p = dnsPacket.decode(r);
        // The question exactly as sent (case too), and an answer to it.
        expect(r.subarray(12, 12 + m.length - 12)).toEqual(m.subarray(12));
        expect(p.type).toBe("response");
        const q = m.toString("latin1").toLowerCase();
        if (q.includes("\u0002nx")) expect(r[3] & 0xf).toBe(3); // NXDOMAIN
        else expect(p.answers!.length).toBeGreaterThan(0);
      }
    }
  });

  it("answers through node:dgram with udp_io = \"dgram\", and says so", async () => {
    expect(dgramNode.stdout()).toMatch(/^dns udp\+tcp 127\.0\.0\.1:\d+ \(UDP through node:dgram\)$/m);
    const replies = await exchange("127.0.0.1", dgramNode.dnsPort, [query(7, "www.geo.example.org", "A")], 1);
    expect(dnsPacket.decode(replies.get(7)!).answers!.length).toBeGreaterThan(0);
  });
});

/** A host with an answer core that echoes the query as a response padded to `size` bytes. */
function echoHost(host: string, extra: Partial<HostOptions>, size = 0): Promise<Host> {
  return startHost({
    fetch: () => new Response(""),
    answer: (msg) => {
      const bytes = new Uint8Array(Math.max(size, msg.length));
      bytes.set(msg);
      bytes[2] |= 0x80;
      return { bytes, requestedSize: 512, rcode: 0, ttl: 0, tailored: false, qtype: 1, question: null, ecs: undefined, edges: undefined, records: undefined } as Answer;
    },
    host,
    dnsPort: 0,
    maxUdpSize: 1232,
    maxInflight: 1024,
    limits: { connections: { max: 10, perClient: 10 }, messageMs: 5000, idleMs: 5000, handshakeMs: 5000 },
    ...extra,
  });
}

describe("the UDP host", () => {
  const hosts: Host[] = [];
  afterAll(async () => {
    for (const h of hosts) await h.close();
  });

  it("falls back to node:dgram when the addon does not load, saying why once", async () => {
    const lines: string[] = [];
    const h = await echoHost("127.0.0.1", { loadBatch: () => "native/udp-batch.node is not built", log: (l) => lines.push(l) });
    hosts.push(h);
    expect(h.udp!.io).toBe("dgram");
    expect(h.addresses[0]).toMatch(/\(UDP through node:dgram\)$/);
    expect(lines).toEqual(["dns: batched UDP I/O unavailable (native/udp-batch.node is not built): using node:dgram"]);
    const replies = await exchange("127.0.0.1", h.ports.dns!, [query(5, "a.example", "A")], 1);
    expect(replies.get(5)![2] & 0x80).toBe(0x80);
  });

  it("serves IPv6 (::1) batched, and truncates an answer bigger than the client's size (TC)", async () => {
    const h = await echoHost("::1", {}, 600);
    hosts.push(h);
    expect(h.udp!.io).toBe("batched");
    const replies = await exchange("::1", h.ports.dns!, [query(9, "a.example", "A")], 1);
    const r = replies.get(9)!;
    expect(r.length).toBeLessThanOrEqual(512);
    expect(r[2] & 0x02).toBe(0x02); // TC
  });
});
