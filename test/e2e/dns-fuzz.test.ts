/** Random and mutated packets over UDP, TCP and DoH: each gets a well-formed DNS answer or nothing; the node survives. */
import { Buffer } from "node:buffer";
import { createSocket } from "node:dgram";
import { connect } from "node:net";
import * as dnsPacket from "dns-packet";
import { afterAll, beforeAll, expect, it } from "vitest";
import { run, startDnsNode, type DnsNode } from "../support/dns-process.ts";

let node: DnsNode;
beforeAll(async () => {
  node = await startDnsNode();
});
afterAll(async () => {
  await node?.stop();
});

let seed = 20261125;
const rand = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
const int = (n: number) => Math.floor(rand() * n);

const seeds = [
  dnsPacket.encode({ type: "query", id: 1, flags: 256, questions: [{ name: "director.geo.example.org", type: "TXT" }],
    additionals: [{ name: ".", type: "OPT", udpPayloadSize: 1232, flags: 0, options: [{ code: 8, ip: "81.2.69.0", sourcePrefixLength: 24, scopePrefixLength: 0 }] } as never] }),
  dnsPacket.encode({ type: "query", id: 2, questions: [{ name: "www.geo.example.org", type: "A" }] }),
  dnsPacket.encode({ type: "query", id: 3, questions: [{ name: "big.geo.example.org", type: "ANY" as never }],
    additionals: [{ name: ".", type: "OPT", udpPayloadSize: 4096, flags: 0, options: [] } as never] }),
];

/** Either pure noise or a valid query with a few bytes flipped, cut or appended. */
function packet(i: number): Buffer {
  if (i % 4 === 0) return Buffer.from(Array.from({ length: int(80) }, () => int(256)));
  const b = Buffer.from(seeds[i % seeds.length]);
  const out = [...b];
  for (let k = 1 + int(4); k > 0; k--) {
    const op = int(3);
    if (op === 0 && out.length) out[int(out.length)] = int(256);
    else if (op === 1) out.length = Math.max(0, out.length - int(8));
    else out.push(int(256));
  }
  return Buffer.from(out);
}

/** A reply must decode as a DNS response with the query's ID. */
function checkReply(reply: Buffer, id: number) {
  const p = dnsPacket.decode(reply);
  expect(p.flag_qr).toBe(true);
  expect(p.id).toBe(id);
}

async function alive() {
  const r = await run("dig", ["@127.0.0.1", "-p", String(node.dnsPort), "+time=5", "+tries=1", "+short", "+subnet=81.2.69.142/32", "director.geo.example.org", "A"]);
  expect(r.out.trim().split("\n")[0]).toBe("192.0.2.21");
}

it("UDP: 3000 packets, each answered properly or dropped", async () => {
  const sock = createSocket("udp4");
  await new Promise<void>((ok) => sock.bind(0, "127.0.0.1", ok));
  const replies: Buffer[] = [];
  sock.on("message", (m) => replies.push(m));
  const sent = new Map<number, Buffer>();
  for (let batch = 0; batch < 60; batch++) {
    for (let j = 0; j < 50; j++) {
      const i = batch * 50 + j;
      const p = packet(i);
      if (p.length >= 2) p.writeUInt16BE(i, 0); // the ID says which packet a reply belongs to
      sent.set(i, p);
      sock.send(p, node.dnsPort, "127.0.0.1");
    }
    // Let the batch drain before the next one (replies are checked below, not timed).
    await new Promise((r) => setTimeout(r, 40));
  }
  await new Promise((r) => setTimeout(r, 500));
  sock.close();
  const ids = new Set<number>();
  for (const reply of replies) {
    const id = reply.readUInt16BE(0);
    expect(sent.has(id)).toBe(true);
    checkReply(reply, id);
    expect(reply.length).toBeLessThanOrEqual(Math.max(512, 4096));
    ids.add(id);
  }
  expect(ids.size).toBeGreaterThan(500); // mutated valid queries mostly get answers
  await alive();
});

it("TCP: 1000 framed packets over 20 connections, answers well-formed", async () => {
  let answered = 0;
  for (let c = 0; c < 20; c++) {
    const sock = connect(node.dnsPort, "127.0.0.1");
    let buf = Buffer.alloc(0);
    const ids: number[] = [];
    const done = new Promise<void>((ok) => {
      sock.on("data", (d) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + msg.length);
          checkReply(Buffer.from(msg), msg.readUInt16BE(0));
          expect(ids).toContain(msg.readUInt16BE(0));
          answered++;
        }
      });
      sock.on("close", () => ok());
      sock.on("error", () => ok());
    });
    await new Promise<void>((ok) => sock.once("connect", () => ok()));
    const frames: Buffer[] = [];
    for (let j = 0; j < 50; j++) {
      const p = packet(10_000 + c * 50 + j);
      if (p.length >= 2) p.writeUInt16BE(c * 50 + j, 0);
      ids.push(c * 50 + j);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(p.length);
      frames.push(len, p);
    }
    sock.end(Buffer.concat(frames));
    await done;
  }
  expect(answered).toBeGreaterThan(20);
  await alive();
});

it("DoH: 1000 GET and POST requests, 200 with a DNS answer or a 4xx", async () => {
  const base = `http://127.0.0.1:${node.httpPort}`;
  let ok = 0;
  for (let i = 0; i < 1000; i += 10) {
    await Promise.all(
      Array.from({ length: 10 }, async (_, j) => {
        const p = packet(20_000 + i + j);
        const res =
          (i + j) % 2
            ? await fetch(`${base}/dns-query?dns=${p.toString("base64url")}`)
            : await fetch(`${base}/dns-query`, { method: "POST", headers: { "content-type": "application/dns-message" }, body: p });
        const body = Buffer.from(await res.arrayBuffer());
        expect([200, 400]).toContain(res.status);
        if (res.status === 200) {
          expect(res.headers.get("content-type")).toBe("application/dns-message");
          checkReply(body, p.readUInt16BE(0));
          ok++;
        }
      }),
    );
  }
  expect(ok).toBeGreaterThan(300);
  expect(node.child.exitCode).toBeNull();
  await alive();
});
