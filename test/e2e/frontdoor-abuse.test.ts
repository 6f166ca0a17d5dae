/**
 * The front door under attacks that no site limit covers (issue 18, items 4–6), through real HAProxy 2.6 and real
 * clients: HTTP/2 rapid reset (HEADERS + RST_STREAM pairs) on one connection, from an ordinary and an allow-listed
 * address, reaches the edge a bounded number of times and the connection is closed at its next request; a banned
 * client's open HTTP/2 connection is closed and logged once however many streams it resets; half-open TLS connections
 * (nothing sent, a cut ClientHello) are closed at the handshake deadline; one address holds at most the default
 * number of connections.
 */
import { connect as h2connect, constants as h2, type ClientHttp2Session, type SecureClientSessionOptions } from "node:http2";
import { connect as tcpConnect, type Socket } from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseStat, runtimeCommand } from "../../src/frontdoor/haproxy-runtime.ts";
import { curlHttps, startEdgeBox, type EdgeBox } from "../support/frontdoor.ts";
import { RawH2 } from "../support/h2-frames.ts";
import { ScriptedOrigin } from "../support/scripted-origin.ts";

const CONNECTION_REQUESTS = 50;
const HANDSHAKE_MS = 2000;
const origin = new ScriptedOrigin();
let box: EdgeBox;
let ca: string;

beforeAll(async () => {
  origin.set("/page", { headers: { "content-type": "text/plain", "cache-control": "max-age=600" }, body: "hello\n" });
  origin.set("/fresh", { headers: { "content-type": "text/plain", "cache-control": "no-store" }, body: "fresh\n" });
  box = await startEdgeBox(
    `
# The test tells its clients apart by their loopback addresses in the log events.
[privacy]
client_addresses = "full"
[frontdoor]
cert_dir = "{dir}/certs"
allow = ["127.0.0.13"]
connection_requests = ${CONNECTION_REQUESTS}
connection_seconds = 600
handshake_timeout_ms = ${HANDSHAKE_MS}
ban = { after = 2, within = 60, seconds = 120 }
[[sites]]
names = ["r.fd.test"]
certificate = "local"
[[sites]]
names = ["b.fd.test"]
certificate = "local"
limits = [ { name = "b", requests = 3, seconds = 60 } ]
`,
    { origin: origin.handle },
  );
  ca = readFileSync(caPath(), "utf8");
}, 120_000);

const caPath = () => join(box.dir, "certs", "local-ca.pem");

afterAll(async () => {
  await box?.stop();
});

/** HAProxy's counters: requests it passed to the edge (backend `edge`), connections it refused at once. */
async function counters(): Promise<{ toEdge: number; refused: number }> {
  const rows = parseStat(await runtimeCommand(join(box.dir, "store", ".run", "frontdoor", "haproxy.sock"), "show stat", 5_000));
  const edge = rows.find((r) => r.pxname === "edge" && r.svname === "BACKEND")!;
  const fe = rows.find((r) => r.pxname === "public" && r.svname === "FRONTEND")!;
  return { toEdge: Number(edge.stot), refused: Number(fe.dcon ?? 0) + Number(fe.dses ?? 0) };
}

/**
 * Every front door event logged so far, once HAProxy has logged a later request too: a sentinel address goes over
 * site b's limit (a "limited" line), and HAProxy writes its log lines in order.
 */
let sentinels = 0;
async function settledEvents(): Promise<Record<string, unknown>[]> {
  const source = `127.0.0.${90 + sentinels++}`;
  for (let i = 0; i < 4; i++) await curlHttps(box, "b.fd.test", `/page?sentinel=${i}`, caPath(), ["--interface", source, "-o", "/dev/null"]);
  for (let i = 0; i < 200; i++) {
    const events = box.events();
    if (events.some((e) => e.event === "limited" && e.client === source)) return events;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the sentinel request from ${source} was not logged within 10 s`);
}

interface H2 {
  session: ClientHttp2Session;
  goaway?: number;
  closed: Promise<void>;
}

/** An HTTP/2 connection from `source` to the box as `name`. */
async function h2session(source: string, name: string): Promise<H2> {
  // localAddress reaches tls.connect; Node's types for http2.connect leave it out.
  const session = h2connect(`https://127.0.0.1:${box.httpsPort}`, { ca, servername: name, localAddress: source } as SecureClientSessionOptions);
  const conn: H2 = { session, closed: new Promise((r) => session.once("close", () => r())) };
  session.on("goaway", (code) => (conn.goaway = code));
  session.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    session.once("connect", () => resolve());
    session.once("error", reject);
  });
  return conn;
}

/** One GET on `conn`: its status, or 0 when the stream or connection failed. */
function get(conn: H2, name: string, path: string): Promise<number> {
  return new Promise((resolve) => {
    if (conn.session.closed || conn.session.destroyed) return resolve(0);
    let status = 0;
    try {
      const s = conn.session.request({ ":path": path, ":authority": name });
      s.on("response", (h) => (status = Number(h[":status"])));
      s.on("error", () => resolve(0));
      s.on("close", () => resolve(s.rstCode === h2.NGHTTP2_NO_ERROR ? status : 0));
      s.resume();
    } catch {
      resolve(0);
    }
  });
}

describe("HTTP/2 rapid reset", () => {
  for (const [who, source] of [
    ["an address no limit applies to", "127.0.0.20"],
    ["an allow-listed address", "127.0.0.13"],
  ] as const) {
    it(`reaches the edge a bounded number of times from ${who}; the connection is closed at its next request; others are served`, async () => {
      const before = await counters();
      const conn = await RawH2.connect({ port: box.httpsPort, servername: "r.fd.test", ca, localAddress: source });
      let othersDone = false;
      const others: number[] = [];
      let slowest = 0;
      const otherClient = (async () => {
        for (let i = 0; i < 100 && !othersDone; i++) {
          const r = await curlHttps(box, "r.fd.test", `/page?other=${i}`, caPath(), ["--interface", "127.0.0.21", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"]);
          const [code, seconds] = r.out.split(" ");
          others.push(Number(code));
          slowest = Math.max(slowest, Number(seconds));
        }
      })();
      const sent = await conn.rapidReset("r.fd.test", "/fresh", 10_000);
      // A request the client does not reset itself: refused, and the connection with it (GOAWAY).
      const after = await conn.get("r.fd.test", "/page?after");
      const closed = await conn.closedWithin(10_000);
      othersDone = true;
      await otherClient;
      const reached = (await counters()).toEdge - before.toEdge;
      console.log(`rapid reset from ${source}: ${sent} pairs, ${reached} requests reached the edge (${others.length} of them the other client's, its slowest ${slowest} s), goaway ${conn.goaway}`);
      conn.destroy();
      expect(sent).toBe(10_000);
      expect(reached).toBeLessThanOrEqual(CONNECTION_REQUESTS + others.length);
      expect(after).toBe(0);
      expect(conn.goaway).toBe(h2.NGHTTP2_ENHANCE_YOUR_CALM);
      expect(closed).toBe(true);
      expect(others.length).toBeGreaterThan(0);
      expect(others.every((c) => c === 200)).toBe(true);
      // Logged once for the connection, not once per refused stream.
      expect((await settledEvents()).filter((e) => e.event === "flooding" && e.client === source)).toHaveLength(1);
    }, 90_000);
  }
});

describe("a ban", () => {
  it("closes the banned client's open HTTP/2 connection and logs it once, however many streams it resets", async () => {
    const source = "127.0.0.40";
    const early = await RawH2.connect({ port: box.httpsPort, servername: "b.fd.test", ca, localAddress: source });
    expect(await early.get("b.fd.test", "/page?early")).toBe(200);

    // Another connection from the same address goes over the site's limit: 429s, then the ban ends it.
    const flood = await h2session(source, "b.fd.test");
    const codes: number[] = [];
    for (let i = 0; i < 20 && !flood.session.closed && !flood.goaway; i++) codes.push(await get(flood, "b.fd.test", `/page?f=${i}`));
    expect(codes).toContain(429);
    expect(flood.goaway).toBe(h2.NGHTTP2_ENHANCE_YOUR_CALM);

    // The connection opened before the ban resets streams, then makes a request: refused, connection closed.
    await early.rapidReset("b.fd.test", "/page", 2_000);
    expect(await early.get("b.fd.test", "/page?late")).toBe(0);
    expect(await early.closedWithin(10_000)).toBe(true);
    early.destroy();
    flood.session.destroy();

    const banned = (await settledEvents()).filter((e) => e.event === "banned" && e.client === source);
    console.log(`banned ${source}: ${banned.length} "banned" log lines`);
    expect(banned.length).toBeGreaterThanOrEqual(1);
    expect(banned.length).toBeLessThanOrEqual(2); // one per connection
  }, 60_000);
});

/** Raw TCP connections from `source` to the HTTPS port; `hello` is written first when given. */
async function rawConnections(source: string, n: number, hello?: Buffer): Promise<{ socket: Socket; closed: Promise<number> }[]> {
  return Promise.all(
    Array.from({ length: n }, () => {
      const opened = Date.now();
      const socket = tcpConnect({ host: "127.0.0.1", port: box.httpsPort, localAddress: source });
      socket.on("error", () => {});
      socket.on("data", () => {});
      const closed = new Promise<number>((r) => socket.once("close", () => r(Date.now() - opened)));
      return new Promise<{ socket: Socket; closed: Promise<number> }>((resolve) => {
        socket.once("connect", () => {
          if (hello) socket.write(hello);
          resolve({ socket, closed });
        });
        void closed.then(() => resolve({ socket, closed }));
      });
    }),
  );
}

/** Resolves with the close times when all close, or with undefined for those still open after `ms`. */
async function closedWithin(conns: { closed: Promise<number> }[], ms: number): Promise<(number | undefined)[]> {
  const deadline = new Promise<undefined>((r) => setTimeout(() => r(undefined), ms));
  return Promise.all(conns.map((c) => Promise.race([c.closed, deadline])));
}

describe("half-open TLS connections", () => {
  // The first bytes of a ClientHello record: a TLS record header announcing 512 bytes, then the handshake header.
  const cutHello = Buffer.from("1603010200010001fc0303", "hex");

  it("are closed at the handshake deadline, whether they send nothing or a cut ClientHello", async () => {
    const silent = await rawConnections("127.0.0.30", 10);
    const cut = await rawConnections("127.0.0.30", 10, cutHello);
    const times = await closedWithin([...silent, ...cut], HANDSHAKE_MS + 15_000);
    console.log(`half-open TLS: closed after ${Math.min(...times.map((t) => t ?? Infinity))}–${Math.max(...times.map((t) => t ?? Infinity))} ms`);
    for (const c of [...silent, ...cut]) c.socket.destroy();
    expect(times.every((t) => t !== undefined)).toBe(true);
    expect(Math.min(...(times as number[]))).toBeGreaterThanOrEqual(HANDSHAKE_MS - 100);
  }, 60_000);

  it("one address holds at most the default 256 connections; the rest are closed at once", async () => {
    const before = await counters();
    const conns = await rawConnections("127.0.0.31", 300);
    const times = await closedWithin(conns, HANDSHAKE_MS + 15_000);
    console.log(`300 connections: ${times.filter((t) => t === undefined).length} still open, ${times.filter((t) => t !== undefined && t < HANDSHAKE_MS - 100).length} closed before the handshake deadline`);
    for (const c of conns) c.socket.destroy();
    const refused = (await counters()).refused - before.refused;
    expect(refused).toBe(300 - 256);
  }, 60_000);
});
