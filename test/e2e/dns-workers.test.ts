/**
 * `--workers 2`: a second process answers on a UDP socket of its own on the same port (SO_REUSEPORT), follows the
 * first one's edge health (here an operator drain), reports its query counts to the first one's /metrics, and goes
 * away with the first.
 */
import { createSocket, type Socket } from "node:dgram";
import { existsSync, readFileSync } from "node:fs";
import * as dnsPacket from "dns-packet";
import { afterAll, beforeAll, expect, it } from "vitest";
import { run, startDnsNode, type DnsNode } from "../support/dns-process.ts";

let node: DnsNode;
const TOKEN = "workers-admin-token-0123456789";
beforeAll(async () => {
  node = await startDnsNode({ workers: 2, extraToml: `\n[admin]\ntoken = "${TOKEN}"\n` });
});
afterAll(async () => {
  if (node && node.child.exitCode === null && node.child.signalCode === null) {
    process.kill(node.child.pid!, "SIGCONT");
    await node.stop();
  }
});

/** Sends `n` queries over UDP, 50 at a time; resolves with how many were answered (the TXT of the last one too). */
async function burst(port: number, n: number, from?: Socket): Promise<{ answered: number; txt: string }> {
  const sock = from ?? createSocket("udp4");
  const waiting = new Map<number, () => void>();
  let answered = 0;
  let txt = "";
  sock.on("message", (msg) => {
    const p = dnsPacket.decode(msg);
    const done = waiting.get(p.id!);
    if (!done) return;
    answered++;
    txt = String(((p.answers?.[0] as dnsPacket.TxtAnswer | undefined)?.data as Buffer[] | undefined)?.[0] ?? "");
    waiting.delete(p.id!);
    done();
  });
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, (_, k) => {
        const id = i + k + 1;
        return new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            waiting.delete(id);
            resolve();
          }, 2000);
          waiting.set(id, () => {
            clearTimeout(timer);
            resolve();
          });
          sock.send(dnsPacket.encode({ type: "query", id, questions: [{ name: "director.geo.example.org", type: "TXT" }] }), port, "127.0.0.1");
        });
      }),
    );
  }
  sock.removeAllListeners("message");
  if (!from) sock.close();
  return { answered, txt };
}

/** The A answer for director over UDP from the process the kernel hands `sock`'s queries to; null: none in 2 s. */
async function directorA(port: number, sock: Socket): Promise<string[] | null> {
  const id = Math.floor(Math.random() * 65536);
  let onMessage: (m: Buffer) => void = () => {};
  const answer = new Promise<Buffer | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), 2000);
    onMessage = (m) => {
      if (m.readUInt16BE(0) !== id) return; // a late answer to an earlier query
      clearTimeout(timer);
      resolve(m);
    };
    sock.on("message", onMessage);
  });
  sock.send(dnsPacket.encode({ type: "query", id, questions: [{ name: "director.geo.example.org", type: "A" }] }), port, "127.0.0.1");
  const got = await answer;
  sock.off("message", onMessage);
  return got ? (dnsPacket.decode(got).answers ?? []).map((a) => String((a as { data: unknown }).data)) : null;
}

/**
 * A client socket whose queries the kernel hands to the worker's socket (SO_REUSEPORT picks a socket by the client's
 * address and port): found while the first process is stopped, as one that gets an answer. Closed by the caller.
 */
async function workerBound(port: number): Promise<Socket> {
  process.kill(node.child.pid!, "SIGSTOP");
  try {
    for (let i = 0; i < 32; i++) {
      const sock = createSocket("udp4");
      if (await directorA(port, sock)) return sock;
      sock.close();
    }
  } finally {
    process.kill(node.child.pid!, "SIGCONT");
  }
  throw new Error("no client port reaches the worker process");
}

const metrics = async () =>
  (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
const udpQueries = (text: string) =>
  [...text.matchAll(/^parrot_dns_queries_total\{transport="udp"[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);

it("the worker process follows the first one's health and its queries show in the first one's metrics", async () => {
  const before = udpQueries(await metrics());
  const drain = (draining: boolean) =>
    fetch(`http://127.0.0.1:${node.httpPort}/admin/drain`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ edge: "us-sea", draining }),
    });
  const toWorker = await workerBound(node.dnsPort);
  expect((await drain(true)).status).toBe(200);
  // The state travels to the worker over IPC: ask it alone (the first process stopped) until it has arrived.
  let alone: string[] | null = [];
  try {
    for (let i = 0; i < 50; i++) {
      process.kill(node.child.pid!, "SIGSTOP");
      try {
        alone = await directorA(node.dnsPort, toWorker);
      } finally {
        process.kill(node.child.pid!, "SIGCONT");
      }
      if (alone && !alone.includes("192.0.2.22")) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    toWorker.close();
  }
  expect(alone).not.toContain("192.0.2.22");
  expect(alone).toHaveLength(2);
  expect((await drain(false)).status).toBe(200);
  await burst(node.dnsPort, 200);
  // Worker processes report every second.
  let after = 0;
  for (let i = 0; i < 40 && after < before + 201; i++) {
    await new Promise((r) => setTimeout(r, 100));
    after = udpQueries(await metrics());
  }
  expect(after).toBeGreaterThanOrEqual(before + 201);
});

it("runs both processes from the bundle with a 1 MB semi-space, and /metrics shows each one's memory", async () => {
  const primary = node.child.pid!;
  const worker = Number((await run("ps", ["--ppid", String(primary), "-o", "pid="])).out.trim());
  // scripts/dns.ts replaced itself (same PID) with the bundled node; the worker is forked from the bundle too.
  const args = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  expect(args(primary)).toContain("--max-semi-space-size=1");
  expect(args(primary).some((a) => a.endsWith("/dist/dns/dns-main.mjs"))).toBe(true);
  expect(args(worker)).toContain("--max-semi-space-size=1");
  expect(args(worker).some((a) => a.endsWith("/dist/dns/dns-worker.mjs"))).toBe(true);
  // The worker reports its memory with its counts every second.
  const gauge = (text: string, name: string) =>
    new Map([...text.matchAll(new RegExp(`^parrot_dns_process_${name}\\{pid="(\\d+)"\\} (\\d+)$`, "gm"))].map((m) => [Number(m[1]), Number(m[2])]));
  let text = await metrics();
  for (let i = 0; i < 40 && !gauge(text, "resident_bytes").has(worker); i++) {
    await new Promise((r) => setTimeout(r, 100));
    text = await metrics();
  }
  for (const pid of [primary, worker]) {
    const rss = gauge(text, "resident_bytes").get(pid)!;
    const own = gauge(text, "private_bytes").get(pid)!;
    // RSS includes the Node executable's shared pages; the private part is less, and the heap less than that.
    expect(rss).toBeGreaterThan(own);
    expect(own).toBeGreaterThan(gauge(text, "heap_used_bytes").get(pid)!);
    expect(gauge(text, "heap_used_bytes").get(pid)!).toBeGreaterThan(1 << 20);
    expect(gauge(text, "heap_total_bytes").get(pid)!).toBeGreaterThanOrEqual(gauge(text, "heap_used_bytes").get(pid)!);
    // The same figure as the kernel's, within what changes between the two reads.
    const kernelRss = Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
    expect(Math.abs(rss - kernelRss)).toBeLessThan(16 << 20);
  }
  expect([...gauge(text, "resident_bytes").keys()].sort()).toEqual([primary, worker].sort());
});

it("serves UDP from both processes; the worker alone while the first is stopped", async () => {
  const children = (await run("ps", ["--ppid", String(node.child.pid), "-o", "pid="])).out.split("\n").map((s) => s.trim()).filter(Boolean);
  expect(children).toHaveLength(1);
  // Each process has a UDP socket of its own on the port (SO_REUSEPORT), not one socket shared between them.
  const sockets = (await run("ss", ["-H", "-u", "-a", "-n", "-p", `sport = :${node.dnsPort}`])).out.trim().split("\n");
  expect(sockets).toHaveLength(2);
  expect(sockets.map((l) => l.match(/pid=(\d+)/g)?.length)).toEqual([1, 1]);
  const all = await burst(node.dnsPort, 1000);
  expect(all.answered).toBe(1000);
  expect(all.txt).toBe("ip 127.0.0.1 v4 city unknown country unknown unknown state unknown region unknown name unknown as unknown");
  // Stop the first process: the worker answers the clients the kernel hands its socket, on its own.
  const toWorker = await workerBound(node.dnsPort);
  process.kill(node.child.pid!, "SIGSTOP");
  try {
    const alone = await burst(node.dnsPort, 300, toWorker);
    expect(alone.answered).toBe(300);
  } finally {
    process.kill(node.child.pid!, "SIGCONT");
    toWorker.close();
  }
  // TCP and DoH stay with the first process.
  const tcp = await run("dig", ["@127.0.0.1", "-p", String(node.dnsPort), "+tcp", "+short", "+time=5", "+tries=1", "director.geo.example.org", "A"]);
  expect(tcp.out.trim().split("\n")).toEqual(["192.0.2.22", expect.stringMatching(/^192\.0\.2\.2[13]$/)]);
  const doh = await fetch(`http://127.0.0.1:${node.httpPort}/resolve?name=director.geo.example.org&type=A`);
  expect(doh.status).toBe(200);

  await node.stop();
  for (let i = 0; i < 50 && existsSync(`/proc/${children[0]}`); i++) await new Promise((r) => setTimeout(r, 100));
  expect(existsSync(`/proc/${children[0]}`)).toBe(false);
});
