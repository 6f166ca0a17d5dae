/**
 * The DNS node's TLS listeners against a real node (issue 18): the handshake deadline counts the whole handshake (a
 * ClientHello made by openssl, trickled a byte at a time, is cut at tls_handshake_ms on DoT and on DoH over TLS), and
 * a configured certificate opens only the TLS ports the command line names.
 */
import { connect, createServer, type Socket } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { run, startDnsNode, type DnsNode } from "../support/dns-process.ts";

// A long message deadline and idle time: only the handshake deadline can end a trickled handshake early.
const LIMITS = `
[dns.limits]
tls_handshake_ms = 1000
message_ms = 20000
idle_ms = 30000
`;
let node: DnsNode;
let quiet: DnsNode;
const sockets: Socket[] = [];
beforeAll(async () => {
  [node, quiet] = await Promise.all([startDnsNode({ tls: true, extraToml: LIMITS }), startDnsNode({ tls: true, tlsListeners: [] })]);
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all([node?.stop(), quiet?.stop()]);
});

/** openssl s_client's first TLS record (its ClientHello), caught by a listener that closes once it has it. */
async function clientHello(): Promise<Buffer> {
  let hello: Buffer | undefined;
  const server = createServer((s) => {
    let got = Buffer.alloc(0);
    s.on("data", (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 5 && got.length >= 5 + got.readUInt16BE(3)) {
        hello ??= got.subarray(0, 5 + got.readUInt16BE(3));
        s.destroy();
      }
    });
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await run("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost"], 10_000);
  await new Promise<void>((r) => server.close(() => r()));
  if (!hello) throw new Error("openssl sent no ClientHello");
  return hello;
}

/**
 * Sends `hello` one byte every 100 ms (at most 20 s) and resolves when the server closes the connection: the time
 * from the first byte and how many bytes went out.
 */
function trickle(port: number, hello: Buffer): Promise<{ ms: number; sent: number }> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    sockets.push(s);
    s.on("error", () => {});
    let sent = 0;
    let started = 0;
    let timer: ReturnType<typeof setInterval> | undefined;
    s.once("connect", () => {
      started = performance.now();
      const next = () => {
        if (s.destroyed || sent >= hello.length || sent >= 200) return clearInterval(timer);
        s.write(hello.subarray(sent, ++sent));
      };
      next();
      timer = setInterval(next, 100);
    });
    s.once("close", () => {
      clearInterval(timer);
      resolve({ ms: performance.now() - started, sent });
    });
  });
}

it("cuts a trickled handshake at tls_handshake_ms, on DoT and on DoH over TLS", async () => {
  const hello = await clientHello();
  expect(hello.length).toBeGreaterThan(150); // well over the 10 bytes 1 s of trickling sends
  for (const [listener, port] of [["dot", node.dotPort!], ["https", node.tlsPort!]] as const) {
    const { ms, sent } = await trickle(port, hello);
    // Restarted by each byte, the handshake would live on until the message deadline (21 s); whole, it ends at 1 s.
    expect(ms, listener).toBeGreaterThanOrEqual(900);
    expect(ms, listener).toBeLessThan(8000);
    expect(sent, listener).toBeLessThan(hello.length);
  }
  // A real handshake and query still get through.
  const r = await run("kdig", ["@127.0.0.1", "-p", String(node.dotPort), "+tls", `+tls-ca=${node.cert}`, "+tls-hostname=localhost", "+short", "director.geo.example.org", "A"]);
  expect(r.out).toMatch(/^192\.0\.2\.\d+$/m);
});

it("opens no TLS port the command line does not name, and says so", async () => {
  // Plain DNS answers (every listener line is printed by then), and no DoH over TLS or DoT listens.
  const r = await run("dig", ["@127.0.0.1", "-p", String(quiet.dnsPort), "+short", "ns1.geo.example.org", "A"]);
  expect(r.out.trim()).toBe("192.0.2.53");
  expect(quiet.stdout()).toMatch(/^dns udp\+tcp /m);
  expect(quiet.stdout()).not.toMatch(/^dns (https|dot) /m);
  expect(quiet.stderr()).toContain("dns.tls_cert is set but neither --tls-port nor --dot-port is given");
});
