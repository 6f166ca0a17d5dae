/**
 * Node host for the GeoDNS handler: classic DNS over UDP and TCP (workerd has no UDP), DNS over TLS (RFC 7858: the
 * TCP framing inside TLS), plain-HTTP DoH, and DoH over TLS with HTTP/2 + HTTP/1.1 (both through serve-fetch.ts, the
 * one Node ↔ fetch adapter). UDP, TCP and DoT messages go straight to the answer core with the peer address, without
 * a Request/Response per query. Extra worker processes bind UDP sockets of their own on the same port
 * (SO_REUSEPORT: the kernel spreads the clients over them, no lock or socket shared between processes).
 *
 * Every stream listener (TCP, DoT, both DoH) holds against hostile clients: connections per listener and per client
 * with the oldest idle one closed to make room (src/net/connection-limits.ts), a deadline for each whole message from
 * its first byte (trickling bytes do not extend it), an idle timeout between messages, a TLS handshake deadline.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { createServer as createTcpServer, isIP, isIPv6, type Server as TcpServer, type Socket } from "node:net";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import type { Answer, Transport } from "../dns/answer.ts";
import { truncateAnswer } from "../dns/wire.ts";
import { ConnectionLimits, clientKey, type LimitSettings } from "../net/connection-limits.ts";
import { parseIp, type IpBytes } from "../net/ip.ts";
import { serveFetch, type FetchHandler, type Served } from "./serve-fetch.ts";
import { loadUdpBatch, openBatched } from "./udp-batched.ts";

/** The answer core: one DNS message, the peer's address and the transport in, the answer (or null: drop) out. */
export type AnswerCore = (message: Uint8Array, peer: IpBytes | null, transport: Transport) => Answer | null;

/** What UDP does with a query before answering it (response rate limiting): answer, drop, or answer TC=1 empty. */
export type UdpGate = (peer: IpBytes) => "answer" | "drop" | "slip";

/** Bounds of the stream listeners. */
export interface StreamLimits {
  connections: LimitSettings;
  /** A whole message (TCP/DoT query, HTTP request) must arrive within this from its first byte. */
  messageMs: number;
  /** A connection with nothing in progress closes after this. */
  idleMs: number;
  handshakeMs: number;
}

export interface HostOptions {
  /** The HTTP handler: operator endpoints and DoH. */
  fetch: FetchHandler;
  answer: AnswerCore;
  host: string;
  /** Port numbers; 0 picks a free one (the UDP and TCP DNS ports are the same number). */
  dnsPort?: number;
  httpPort?: number;
  /** DoH over TLS (HTTP/2 + HTTP/1.1). */
  tlsPort?: number;
  /** DNS over TLS. */
  dotPort?: number;
  tls?: { cert: Buffer | string; key: Buffer | string };
  /** Largest UDP answer whatever the client advertises. */
  maxUdpSize: number;
  /** UDP answers queued in libuv before new queries are dropped (node:dgram; batched I/O drops what the kernel refuses). */
  maxInflight: number;
  /** UDP through the native addon (recvmmsg/sendmmsg) when it loads, else node:dgram; or node:dgram in any case. */
  udpIo?: UdpIo;
  /** Loads the addon (tests pass one that fails). */
  loadBatch?: typeof loadUdpBatch;
  /** Other processes will bind the UDP port too (SO_REUSEPORT; --workers). */
  reusePort?: boolean;
  limits: StreamLimits;
  udpGate?: UdpGate;
  log?: (line: string) => void;
}

export interface Host {
  /** Listener lines, e.g. "dns udp+tcp 127.0.0.1:5353". */
  addresses: string[];
  ports: { dns?: number; http?: number; tls?: number; dot?: number };
  /** The bound UDP socket (where worker processes bind theirs) and how it does its I/O. */
  udp?: UdpListener;
  /** Connections each stream listener closed to make room, since the start. */
  evicted(): Record<string, number>;
  /** New bounds for the stream listeners (a reload); connections already open keep their timers. */
  setLimits(limits: StreamLimits): void;
  /** New certificate and key for the TLS listeners' new connections. */
  setTls(tls: { cert: Buffer | string; key: Buffer | string }): void;
  close(): Promise<void>;
}

const MAX_MESSAGE = 65535;
const DOH_LIMITS = { maxBodyBytes: MAX_MESSAGE, maxUrlBytes: 8192, maxHeaderBytes: 16384 };

const hostPort = (host: string, port: number) => (isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`);

/** Peer address text → bytes, remembered (a busy server sees the same resolvers again and again). */
function peerParser(): (address: string) => IpBytes | null {
  const seen = new Map<string, IpBytes | null>();
  return (address) => {
    let b = seen.get(address);
    if (b === undefined) {
      b = parseIp(address);
      if (seen.size >= 10_000) seen.clear();
      seen.set(address, b);
    }
    return b;
  };
}

/** The answer core, guarded: an exception drops the query and is logged; the process stays up. */
function guarded(answer: AnswerCore, log: (line: string) => void): AnswerCore {
  return (msg, peer, transport) => {
    try {
      return answer(msg, peer, transport);
    } catch (err) {
      log(`dns ${transport}: ${(err as Error).message}`);
      return null;
    }
  };
}

export type UdpIo = "batched" | "dgram";

/** A bound UDP listener for DNS. */
export interface UdpListener {
  address: string;
  port: number;
  /** How it reads and writes: the native addon's batches, or node:dgram. */
  io: UdpIo;
  close(): Promise<void>;
}

type UdpOptions = Pick<HostOptions, "answer" | "maxUdpSize" | "maxInflight" | "udpGate" | "log">;

/** One UDP query from a peer to the reply to send (null: none): the RRL gate, the answer, truncation to the size. */
function udpReply(msg: Uint8Array, from: IpBytes | null, o: UdpOptions, answer: AnswerCore): Uint8Array | null {
  // A runt is not DNS: drop.
  if (msg.length < 12) return null;
  const verdict = o.udpGate && from ? o.udpGate(from) : "answer";
  if (verdict === "drop") return null;
  const a = answer(msg, from, "udp");
  if (!a) return null;
  // A slipped answer is empty with TC=1: a real resolver retries over TCP, a spoofed victim gets nothing big.
  const limit = verdict === "slip" ? 0 : Math.min(a.requestedSize, o.maxUdpSize);
  return truncateAnswer(a.bytes, limit);
}

/**
 * Serves classic DNS on a bound UDP socket of node:dgram (this process's, or a parent's). `o` is read per query: a
 * reload may change its sizes and gate in place.
 */
function serveUdp(udp: UdpSocket, o: UdpOptions, core?: AnswerCore): void {
  const log = o.log ?? (() => {});
  const peer = peerParser();
  const answer = core ?? guarded(o.answer, log);
  udp.on("message", (msg: Buffer, rinfo: RemoteInfo) => {
    // Shed load when answers pile up unsent.
    if (udp.getSendQueueCount() >= o.maxInflight) return;
    const reply = udpReply(msg, peer(rinfo.address), o, answer);
    if (reply) udp.send(reply, rinfo.port, rinfo.address);
  });
  udp.on("error", (err) => log(`dns udp: ${err.message}`));
}

/**
 * Binds a UDP listener for DNS and serves it: batched through the native addon when asked and it loads (the host must
 * be an IP address), else node:dgram; `fallback` hears why batched I/O was not used. `o` is read per query.
 */
export async function listenUdp(
  host: string,
  port: number,
  reusePort: boolean,
  o: UdpOptions & Pick<HostOptions, "udpIo" | "loadBatch">,
  core: AnswerCore,
  fallback: (reason: string) => void,
): Promise<UdpListener> {
  if ((o.udpIo ?? "batched") === "batched") {
    const addon = (o.loadBatch ?? loadUdpBatch)();
    if (typeof addon === "string") fallback(addon);
    else if (!isIP(host)) fallback(`the listen address ${host} is not an IP address`);
    else {
      const sock = openBatched(addon, host, port, reusePort, (msg, from) => udpReply(msg, from, o, core));
      return { address: host, port: sock.port, io: "batched", close: async () => sock.close() };
    }
  }
  const udp = await bindUdp(host, port, reusePort);
  serveUdp(udp, o, core);
  const a = udp.address();
  return { address: a.address, port: a.port, io: "dgram", close: () => new Promise<void>((r) => udp.close(() => r())) };
}

/**
 * Serves length-prefixed DNS messages on one stream connection (TCP, or the TLS socket of DoT): answers go out in
 * order, several queries in flight at once; a client that stops reading is paused.
 */
function serveStream(sock: Socket, transport: "tcp" | "dot", answer: AnswerCore, peer: IpBytes | null, watch: StreamWatch): void {
  let buf = Buffer.alloc(0);
  // The client may half-close after its last query: every complete query is answered at once, so end then.
  sock.on("end", () => sock.end());
  sock.setNoDelay(true);
  sock.on("drain", () => sock.resume());
  sock.on("data", (chunk: Buffer) => {
    if (buf.length === 0) watch.messageStarted();
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    let out: Buffer[] | undefined;
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) break;
      const msg = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      if (buf.length) watch.messageStarted(); // the next message starts now
      if (len < 12) continue; // not a DNS message: skip it (the framing is intact)
      const a = answer(msg, peer, transport);
      if (!a) continue;
      const frame = Buffer.allocUnsafe(2 + a.bytes.length);
      frame.writeUInt16BE(a.bytes.length, 0);
      frame.set(a.bytes, 2);
      (out ??= []).push(frame);
    }
    if (buf.length) buf = Buffer.from(buf); // do not pin the whole chunk for a partial frame
    else watch.idle();
    // Answers of one chunk go out in one write; a client that does not read is paused (pipelining bound).
    if (out && !sock.destroyed && !sock.write(out.length === 1 ? out[0] : Buffer.concat(out))) sock.pause();
  });
}

/** A stream connection's deadlines and its place in the listener's limits. */
interface StreamWatch {
  messageStarted(): void;
  idle(): void;
}

/** Admits a new connection (closing others to make room) and arms its deadlines; `destroy` closes it. */
function watchConnection(limiter: ConnectionLimits<Socket>, limits: StreamLimits, raw: Socket, firstDeadlineMs: number): StreamWatch {
  for (const victim of limiter.admit(raw, clientKey(raw.remoteAddress ?? ""))) victim.destroy();
  let timer = setTimeout(() => raw.destroy(), firstDeadlineMs);
  let inMessage = false;
  raw.once("close", () => {
    clearTimeout(timer);
    limiter.remove(raw);
  });
  raw.on("error", () => raw.destroy());
  limiter.setIdle(raw, true);
  return {
    messageStarted() {
      clearTimeout(timer);
      inMessage = true;
      limiter.setIdle(raw, false);
      timer = setTimeout(() => raw.destroy(), limits.messageMs);
    },
    idle() {
      if (!inMessage) return;
      inMessage = false;
      clearTimeout(timer);
      limiter.setIdle(raw, true);
      timer = setTimeout(() => raw.destroy(), limits.idleMs);
    },
  };
}

/** Classic DNS over TCP on a listening server. */
function serveTcp(tcp: TcpServer, o: HostOptions, answer: AnswerCore, limiter: ConnectionLimits<Socket>): void {
  const peer = peerParser();
  tcp.on("connection", (sock: Socket) => {
    const watch = watchConnection(limiter, o.limits, sock, Math.min(o.limits.idleMs, o.limits.messageMs));
    serveStream(sock, "tcp", answer, peer(sock.remoteAddress ?? ""), watch);
  });
  tcp.on("error", (err) => o.log?.(`dns tcp: ${err.message}`));
}

/** DNS over TLS (RFC 7858): a TLS server with ALPN "dot" whose sockets carry the TCP framing. */
function dotServer(o: HostOptions, answer: AnswerCore, limiter: ConnectionLimits<Socket>): TlsServer {
  const peer = peerParser();
  const watches = new Map<string, StreamWatch>();
  const key = (s: { remoteAddress?: string; remotePort?: number }) => `${s.remoteAddress}|${s.remotePort}`;
  const handshakes = new Map<string, ReturnType<typeof setTimeout>>();
  const server = createTlsServer({ ...o.tls!, ALPNProtocols: ["dot"], handshakeTimeout: o.limits.handshakeMs }, (sock) => {
    const k = key(sock);
    clearTimeout(handshakes.get(k));
    handshakes.delete(k);
    const watch = watches.get(k);
    if (!watch) return void sock.destroy();
    serveStream(sock, "dot", answer, peer(sock.remoteAddress ?? ""), watch);
  });
  // Admission on the raw connection: a client stuck in its handshake holds a slot too.
  server.on("connection", (raw: Socket) => {
    const k = key(raw);
    const limits = o.limits;
    watches.set(k, watchConnection(limiter, limits, raw, Math.min(limits.idleMs, limits.handshakeMs + limits.messageMs)));
    // The whole handshake within tls_handshake_ms of the connection (Node's handshakeTimeout restarts with each byte).
    handshakes.set(k, setTimeout(() => raw.destroy(), limits.handshakeMs));
    raw.once("close", () => {
      clearTimeout(handshakes.get(k));
      handshakes.delete(k);
      watches.delete(k);
    });
  });
  server.on("tlsClientError", () => {});
  return server;
}

/**
 * A UDP socket for DNS. Replies go to the address a query came from, an IP literal: the lookup hands it back at once
 * (dgram's default is dns.lookup, a deferred callback per reply).
 */
function dnsUdpSocket(host: string, reusePort = false): UdpSocket {
  const lookup = (address: string, _family: unknown, callback: (err: null, address: string, family: number) => void) =>
    callback(null, address, isIPv6(address) ? 6 : 4);
  return createSocket({ type: isIPv6(host) ? "udp6" : "udp4", reusePort, lookup: lookup as never });
}

/** Binds a UDP socket for DNS (a worker's on the primary's port: reusePort). */
function bindUdp(host: string, port: number, reusePort = false): Promise<UdpSocket> {
  const udp = dnsUdpSocket(host, reusePort);
  return new Promise((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(port, host, () => {
      udp.off("error", reject);
      resolve(udp);
    });
  });
}

/** Starts the listeners; resolves once all are bound. */
export async function startHost(options: HostOptions): Promise<Host> {
  // The bounds are changed in place by setLimits (listeners read them per connection); UDP reads `options` per query.
  const limits: StreamLimits = { ...options.limits, connections: { ...options.limits.connections } };
  const o: HostOptions = { ...options, limits };
  const log = o.log ?? (() => {});
  const answer = guarded(o.answer, log);
  const closers: (() => Promise<void>)[] = [];
  const addresses: string[] = [];
  const ports: Host["ports"] = {};
  const limiters: Record<string, ConnectionLimits<Socket>> = {};
  const served: Record<string, Served> = {};
  const tlsServers: TlsServer[] = [];
  let udp: UdpListener | undefined;
  const closeServer = (s: TcpServer) => () => new Promise<void>((r) => s.close(() => r()));

  if (o.dnsPort !== undefined) {
    let told = false; // one line, however often a port is retried
    const fallback = (reason: string) => told || ((told = true), log(`dns: batched UDP I/O unavailable (${reason}): using node:dgram`));
    const bound = await bindDns(o.host, o.dnsPort, o.reusePort ?? false, (host, port, reuse) => listenUdp(host, port, reuse, options, answer, fallback));
    udp = bound.udp;
    ports.dns = bound.port;
    limiters.tcp = new ConnectionLimits<Socket>(limits.connections);
    serveTcp(bound.tcp, o, answer, limiters.tcp);
    const how = bound.udp.io === "batched" ? "UDP batched: recvmmsg/sendmmsg" : "UDP through node:dgram";
    addresses.push(`dns udp+tcp ${hostPort(o.host, bound.port)} (${how})`);
    closers.push(() => bound.udp.close(), closeServer(bound.tcp));
    closers.push(async () => closeAll(limiters.tcp!));
  }

  if (o.dotPort !== undefined) {
    if (!o.tls) throw new Error("a DoT port needs dns.tls_cert and dns.tls_key");
    limiters.dot = new ConnectionLimits<Socket>(limits.connections);
    const server = dotServer(o, answer, limiters.dot);
    tlsServers.push(server);
    ports.dot = await listen(server, o.host, o.dotPort);
    addresses.push(`dns dot ${hostPort(o.host, ports.dot)} (DNS over TLS)`);
    closers.push(closeServer(server), async () => closeAll(limiters.dot!));
  }

  const httpLimits = { ...DOH_LIMITS, ...limits };
  if (o.httpPort !== undefined) {
    served.http = await serveFetch(o.fetch, { host: o.host, port: o.httpPort, limits: httpLimits, log });
    ports.http = served.http.port;
    addresses.push(`dns http ${hostPort(o.host, ports.http)} (DoH /dns-query, JSON /resolve)`);
  }

  if (o.tlsPort !== undefined) {
    if (!o.tls) throw new Error("a TLS port needs dns.tls_cert and dns.tls_key");
    served.https = await serveFetch(o.fetch, { host: o.host, port: o.tlsPort, tls: o.tls, limits: httpLimits, log });
    ports.tls = served.https.port;
    addresses.push(`dns https ${hostPort(o.host, ports.tls)} (DoH /dns-query over HTTP/2 and HTTP/1.1)`);
  }
  for (const s of Object.values(served)) closers.push(() => s.close());

  return {
    addresses,
    ports,
    udp,
    evicted() {
      const out: Record<string, number> = {};
      for (const [name, l] of Object.entries(limiters)) out[name] = l.evicted;
      for (const [name, s] of Object.entries(served)) out[name] = s.evicted();
      return out;
    },
    setLimits(l) {
      Object.assign(limits.connections, l.connections);
      Object.assign(limits, { ...l, connections: limits.connections });
      Object.assign(httpLimits, { ...l, connections: limits.connections });
    },
    setTls(tls) {
      for (const s of tlsServers) s.setSecureContext(tls);
      served.https?.setTls(tls);
    },
    async close() {
      await Promise.all(closers.map((c) => c().catch(() => {})));
    },
  };
}

/** Closes every connection a listener still holds (its server's close waits for them otherwise). */
function closeAll(limiter: ConnectionLimits<Socket>): void {
  for (const s of limiter.connections()) s.destroy();
}

function listen(server: TcpServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      const a = server.address();
      resolve(typeof a === "object" && a ? a.port : port);
    });
  });
}

/** Binds UDP and TCP on one port number (retrying when 0 picked a port TCP cannot have). */
async function bindDns(
  host: string,
  port: number,
  reusePort: boolean,
  listenUdp: (host: string, port: number, reusePort: boolean) => Promise<UdpListener>,
): Promise<{ udp: UdpListener; tcp: TcpServer; port: number }> {
  for (let attempt = 0; ; attempt++) {
    const udp = await listenUdp(host, port, reusePort);
    const tcp = createTcpServer({ allowHalfOpen: true });
    try {
      await listen(tcp, host, udp.port);
      return { udp, tcp, port: udp.port };
    } catch (err) {
      await udp.close();
      if (port !== 0 || attempt >= 20) throw err;
    }
  }
}

/**
 * Batches log lines for a stream (stdout): lines written in one turn of the event loop go out together, in writes of
 * at most about `maxChunk` bytes cut at line ends (pipe writes up to PIPE_BUF, 4096, are atomic: several processes may
 * share the stream without tearing lines). `flush()` writes what is pending at once (before exit).
 */
export function lineSink(write: (chunk: string) => void, maxChunk = 3500): { line: (line: string) => void; flush: () => void } {
  let pending: string[] = [];
  let size = 0;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (!pending.length) return;
    const lines = pending;
    pending = [];
    size = 0;
    let chunk = "";
    for (const l of lines) {
      if (chunk.length && chunk.length + l.length + 1 > maxChunk) {
        write(chunk);
        chunk = "";
      }
      chunk += l + "\n";
    }
    if (chunk) write(chunk);
  };
  return {
    line(line: string) {
      pending.push(line);
      size += line.length + 1;
      if (size >= 65536) flush();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    flush,
  };
}
