/**
 * Connection abuse against a real DNS node (issue 12), bounded and on loopback: slow-loris and idle connections from
 * several attacker addresses (127.0.0.2–9) on TCP, DoT and DoH while a prober on 127.0.0.1 keeps getting its answers;
 * the whole-message deadline (trickling bytes do not extend it); clear HTTP errors for bad DoH requests.
 */
import { connect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import * as dnsPacket from "dns-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run, startDnsNode, type DnsNode } from "../support/dns-process.ts";

const TOKEN = "abuse-admin-token-0123456789";
const LIMITS = `
[dns.limits]
connections = 40
connections_per_client = 8
message_ms = 1500
idle_ms = 3000
tls_handshake_ms = 1500

[admin]
token = "${TOKEN}"
`;
let node: DnsNode;
const attackers: Socket[] = [];
beforeAll(async () => {
  node = await startDnsNode({ tls: true, extraToml: LIMITS });
});
afterAll(async () => {
  for (const s of attackers) s.destroy();
  await node?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ATTACKERS = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);

/** Opens a connection from `localAddress`; resolves once connected (or closed). */
function open(port: number, localAddress: string, tls = false): Promise<Socket> {
  return new Promise((resolve) => {
    const raw = connect({ host: "127.0.0.1", port, localAddress });
    const s = tls ? tlsConnect({ socket: raw, rejectUnauthorized: false, servername: "localhost" }) : raw;
    raw.on("error", () => {});
    s.on("error", () => {});
    s.once(tls ? "secureConnect" : "connect", () => resolve(s));
    s.once("close", () => resolve(s));
    attackers.push(s, raw);
  });
}

/** `n` connections per attacker address; each, once open, calls `hold` (which sends whatever it sends). */
async function attack(port: number, n: number, hold: (s: Socket) => void, tls = false): Promise<Socket[]> {
  const socks = await Promise.all(ATTACKERS.flatMap((a) => Array.from({ length: n }, () => open(port, a, tls))));
  for (const s of socks) if (!s.destroyed) hold(s);
  return socks;
}

/** Trickles one byte every 200 ms after a length prefix of 65535 (a message that never completes), for at most 8 s. */
function slowLoris(s: Socket): void {
  s.write(Buffer.from([0xff, 0xff]));
  let n = 0;
  const t = setInterval(() => {
    if (s.destroyed || ++n > 40) return clearInterval(t);
    s.write(Buffer.from([0x41]));
  }, 200);
}

/** Runs `probe` every 250 ms for `ms`; the results. */
async function probing<T>(ms: number, probe: () => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    out.push(await probe());
    await sleep(250);
  }
  return out;
}

const tcpQuery = () =>
  run("dig", ["@127.0.0.1", "-p", String(node.dnsPort), "+tcp", "+time=2", "+tries=1", "+short", "+subnet=81.2.69.142/32", "director.geo.example.org", "A"], 10_000);

describe("TCP", () => {
  it("keeps answering a prober while 64 slow-loris connections from 8 addresses trickle bytes", async () => {
    const started = performance.now();
    const socks = await attack(node.dnsPort, 8, slowLoris);
    const results = await probing(4000, tcpQuery);
    expect(results.length).toBeGreaterThanOrEqual(5);
    for (const r of results) expect(r.out.trim().split("\n")[0]).toBe("192.0.2.21");
    // Trickling does not extend the 1.5 s deadline: every attacker connection is gone well before its 8 s of bytes.
    for (let i = 0; i < 40 && socks.some((s) => !s.destroyed); i++) await sleep(100);
    expect(socks.every((s) => s.destroyed)).toBe(true);
    expect(performance.now() - started).toBeLessThan(8000);
  });

  it("closes a trickling message at the deadline counted from its first byte", async () => {
    const s = await open(node.dnsPort, "127.0.0.1");
    const closed = new Promise<number>((r) => s.once("close", () => r(performance.now())));
    const first = performance.now();
    slowLoris(s);
    const ms = (await closed) - first;
    expect(ms).toBeGreaterThanOrEqual(1400);
    expect(ms).toBeLessThan(3500);
  });

  it("lets new clients in past idle connections, closing the oldest idle ones", async () => {
    const idle = await attack(node.dnsPort, 8, () => {}); // 64 idle connections: the listener holds 40
    const results = await probing(1500, tcpQuery);
    for (const r of results) expect(r.out.trim().split("\n")[0]).toBe("192.0.2.21");
    expect(idle.filter((s) => s.destroyed).length).toBeGreaterThanOrEqual(24);
    for (const s of idle) s.destroy();
  });
});

describe("DoT", () => {
  it("keeps answering kdig +tls while slow TLS connections trickle", async () => {
    const socks = await attack(node.dotPort!, 6, slowLoris, true);
    const results = await probing(3000, () =>
      run("kdig", ["@127.0.0.1", "-p", String(node.dotPort), "+tls", `+tls-ca=${node.cert}`, "+tls-hostname=localhost", "+short", "+time=2", "+retry=0", "+subnet=81.2.69.142/32", "director.geo.example.org", "A"], 10_000),
    );
    for (const r of results) expect(r.out.trim().split("\n")[0]).toBe("192.0.2.21");
    for (let i = 0; i < 40 && socks.some((s) => !s.destroyed); i++) await sleep(100);
    expect(socks.every((s) => s.destroyed)).toBe(true);
  });
});

describe("DoH", () => {
  const q = Buffer.from(dnsPacket.encode({ type: "query", id: 0, questions: [{ name: "director.geo.example.org", type: "A" }] })).toString("base64url");

  it("keeps /dns-query, /resolve, /status and /metrics reachable under idle and slow connections", async () => {
    const idle = await attack(node.httpPort, 8, () => {});
    const slow = await attack(node.httpPort, 4, (s) => {
      s.write("GET /dns-query?dns=");
      const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write("A")), 200);
    });
    const results = await probing(3000, async () => {
      const codes = [];
      for (const path of [`/dns-query?dns=${q}`, "/resolve?name=director.geo.example.org", "/status.json", "/metrics"])
        codes.push((await run("curl", ["-s", "-o", "/dev/null", "-m", "3", "-w", "%{http_code}", `http://127.0.0.1:${node.httpPort}${path}`], 10_000)).out);
      return codes.join(",");
    });
    for (const r of results) expect(r).toBe("200,200,200,401");
    for (let i = 0; i < 40 && slow.some((s) => !s.destroyed); i++) await sleep(100);
    expect(slow.every((s) => s.destroyed)).toBe(true);
    for (const s of [...idle, ...slow]) s.destroy();
  });

  it("answers 414, 431, 413 and 400 for bad requests instead of dropping the connection", async () => {
    const code = async (...args: string[]) => (await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", ...args])).out;
    const base = `http://127.0.0.1:${node.httpPort}/dns-query`;
    expect(await code(`${base}?dns=${"A".repeat(20_000)}`)).toBe("414");
    expect(await code(`${base}?dns=${"A".repeat(100_000)}`)).toBe("414");
    expect(await code("-H", `x-big: ${"b".repeat(20_000)}`, `${base}?dns=${q}`)).toBe("431");
    expect(await code("-H", "content-type: application/dns-message", "--data-binary", "x".repeat(70_000), base)).toBe("413");
    const raw = async (request: string) =>
      new Promise<string>((resolve) => {
        const s = connect({ host: "127.0.0.1", port: node.httpPort });
        let got = "";
        s.on("data", (d) => (got += d));
        s.on("close", () => resolve(got));
        s.on("error", () => resolve(got));
        s.write(request);
      });
    expect(await raw("POST /dns-query HTTP/1.1\r\nhost: x\r\ncontent-type: application/dns-message\r\ncontent-length: abc\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 /);
    expect(await raw("POST /dns-query HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\nhello")).toMatch(/^HTTP\/1\.1 400 /);
    expect(await raw("POST /dns-query HTTP/1.1\r\nhost: x\r\ncontent-type: application/dns-message\r\ncontent-length: 70000\r\n\r\n")).toMatch(/^HTTP\/1\.1 413 /);
    // HTTP/2 over TLS: the same statuses.
    const h2 = async (...args: string[]) => (await run("curl", ["-s", "--http2", "--cacert", node.cert!, "-o", "/dev/null", "-w", "%{http_version} %{http_code}", ...args])).out;
    expect(await h2(`https://localhost:${node.tlsPort}/dns-query?dns=${"A".repeat(20_000)}`)).toBe("2 414");
    expect(await h2(`https://localhost:${node.tlsPort}/dns-query?dns=${q}`)).toBe("2 200");
  });

  it("counts the connections each listener closed to make room", async () => {
    const text = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    const evicted = (listener: string) => Number(new RegExp(`parrot_dns_connections_evicted_total\\{listener="${listener}"\\} (\\d+)`).exec(text)?.[1]);
    expect(evicted("tcp")).toBeGreaterThan(0);
    expect(evicted("http")).toBeGreaterThan(0);
  });
});
