/**
 * Node host for the GeoDNS handler: classic DNS over UDP and TCP (workerd has no UDP), plain-HTTP DoH, and DoH over
 * TLS with HTTP/2 + HTTP/1.1. HTTP requests go to the fetch handler with the peer as `cf.clientIp`; UDP and TCP
 * messages go straight to the same answer core (doh.ts `answerWire`) with the peer address, without building a
 * Request/Response per query. Extra worker processes can serve the same UDP socket and TCP listener (serveDnsSockets).
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { createServer as createTcpServer, isIPv6, type Server as TcpServer, type Socket } from "node:net";
import type { Answer, Transport } from "../dns/answer.ts";
import { truncateAnswer } from "../dns/wire.ts";
import { parseIp, type IpBytes } from "../net/ip.ts";

export type FetchHandler = (request: Request) => Promise<Response>;
/** The answer core: one DNS message, the peer's address and the transport in, the answer (or null: drop) out. */
export type AnswerCore = (message: Uint8Array, peer: IpBytes | null, transport: Transport) => Answer | null;

export interface HostOptions {
  fetch: FetchHandler;
  answer: AnswerCore;
  host: string;
  /** Port numbers; 0 picks a free one (the UDP and TCP DNS ports are the same number). */
  dnsPort?: number;
  httpPort?: number;
  tlsPort?: number;
  tls?: { cert: Buffer | string; key: Buffer | string };
  /** Largest UDP answer whatever the client advertises. */
  maxUdpSize: number;
  /** UDP answers queued in the kernel/libuv before new queries are dropped; TCP frames pending per process. */
  maxInflight: number;
  maxTcpConnections: number;
  log?: (line: string) => void;
}

export interface Host {
  /** Listener lines, e.g. "dns udp+tcp 127.0.0.1:5353". */
  addresses: string[];
  ports: { dns?: number; http?: number; tls?: number };
  /** The bound DNS sockets, to hand to worker processes (serveDnsSockets there). */
  dnsSockets?: { udp: UdpSocket; tcp: TcpServer };
  close(): Promise<void>;
}

export type DnsSocketOptions = Pick<HostOptions, "answer" | "maxUdpSize" | "maxInflight" | "maxTcpConnections" | "log">;

const MAX_MESSAGE = 65535;
const TCP_IDLE_MS = 10_000;

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

/** Serves classic DNS on a bound UDP socket and a listening TCP server (this process's, or a parent's UDP socket). */
export function serveDnsSockets(udp: UdpSocket, tcp: TcpServer | undefined, o: DnsSocketOptions): void {
  const log = o.log ?? (() => {});
  const peer = peerParser();

  function answer(msg: Uint8Array, address: string, transport: "udp" | "tcp"): Answer | null {
    try {
      return o.answer(msg, peer(address), transport);
    } catch (err) {
      log(`dns ${transport}: ${(err as Error).message}`);
      return null; // drop it; the process stays up
    }
  }

  udp.on("message", (msg: Buffer, rinfo: RemoteInfo) => {
    // Shed load when answers pile up unsent; a runt is not DNS: drop.
    if (msg.length < 12 || udp.getSendQueueCount() >= o.maxInflight) return;
    const a = answer(msg, rinfo.address, "udp");
    if (!a) return;
    udp.send(truncateAnswer(a.bytes, Math.min(a.requestedSize, o.maxUdpSize)), rinfo.port, rinfo.address);
  });
  udp.on("error", (err) => log(`dns udp: ${err.message}`));
  if (tcp) {
    tcp.maxConnections = o.maxTcpConnections;
    tcp.on("connection", (sock) => serveTcp(sock));
    tcp.on("error", (err) => log(`dns tcp: ${err.message}`));
  }

  function serveTcp(sock: Socket) {
    let buf = Buffer.alloc(0);
    // The client may half-close after its last query: every complete query is answered at once, so end then.
    sock.on("end", () => sock.end());
    sock.setNoDelay(true);
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    sock.on("error", () => sock.destroy());
    sock.on("drain", () => sock.resume());
    const address = sock.remoteAddress ?? "";
    sock.on("data", (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      let out: Buffer[] | undefined;
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        if (len < 12) continue; // not a DNS message: skip it (the framing is intact)
        const a = answer(msg, address, "tcp");
        if (!a) continue;
        const frame = Buffer.allocUnsafe(2 + a.bytes.length);
        frame.writeUInt16BE(a.bytes.length, 0);
        frame.set(a.bytes, 2);
        (out ??= []).push(frame);
      }
      if (buf.length) buf = Buffer.from(buf); // do not pin the whole chunk for a partial frame
      // Answers of one chunk go out in one write; a client that does not read is paused (pipelining bound).
      if (out && !sock.destroyed && !sock.write(out.length === 1 ? out[0] : Buffer.concat(out))) sock.pause();
    });
  }
}

/** Starts the listeners; resolves once all are bound. */
export async function startHost(o: HostOptions): Promise<Host> {
  const log = o.log ?? (() => {});
  const closers: (() => Promise<void>)[] = [];
  const addresses: string[] = [];
  const ports: Host["ports"] = {};
  let dnsSockets: Host["dnsSockets"];

  if (o.dnsPort !== undefined) {
    const { udp, tcp, port } = await bindDns(o.host, o.dnsPort);
    ports.dns = port;
    dnsSockets = { udp, tcp };
    serveDnsSockets(udp, tcp, o);
    addresses.push(`dns udp+tcp ${hostPort(o.host, port)}`);
    closers.push(
      () => new Promise<void>((r) => udp.close(() => r())),
      () => new Promise<void>((r) => tcp.close(() => r())),
    );
  }

  /** Node request → Fetch Request → fetch handler → Node response. */
  async function serveHttp(req: IncomingMessage | Http2ServerRequest, anyRes: ServerResponse | Http2ServerResponse) {
    const res = anyRes as ServerResponse; // the HTTP/2 compatibility API has the same calls
    try {
      const method = req.method ?? "GET";
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) {
        if (k.startsWith(":") || v === undefined) continue;
        for (const item of Array.isArray(v) ? v : [v]) headers.append(k, item);
      }
      let body: Buffer | undefined;
      if (method !== "GET" && method !== "HEAD") {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of req as AsyncIterable<Buffer>) {
          size += chunk.length;
          if (size > MAX_MESSAGE + 1) {
            res.writeHead(413, { "content-type": "text/plain" });
            res.end("DNS messages are at most 65535 bytes\n");
            return;
          }
          chunks.push(chunk);
        }
        body = Buffer.concat(chunks);
      }
      const request = new Request(`http://dns.local${req.url?.startsWith("/") ? req.url : "/"}`, { method, headers, body });
      Object.defineProperty(request, "cf", {
        value: { clientIp: hostPort(req.socket.remoteAddress ?? "", req.socket.remotePort ?? 0) },
      });
      const response = await o.fetch(request);
      const out = Buffer.from(await response.arrayBuffer());
      const h: Record<string, string> = {};
      response.headers.forEach((v, k) => {
        if (k !== "content-length" && k !== "connection" && k !== "transfer-encoding") h[k] = v;
      });
      h["content-length"] = String(out.length);
      res.writeHead(response.status, h);
      res.end(method === "HEAD" ? undefined : out);
    } catch (err) {
      log(`dns http: ${(err as Error).message}`);
      if (!res.headersSent) {
        try {
          res.writeHead(400, { "content-type": "text/plain" });
        } catch {
          /* stream already gone */
        }
      }
      res.end();
    }
  }

  if (o.httpPort !== undefined) {
    const server = createHttpServer({ maxHeaderSize: 16384 }, (req, res) => void serveHttp(req, res));
    server.maxConnections = o.maxTcpConnections;
    server.on("clientError", (_err, sock) => sock.destroy());
    ports.http = await listen(server, o.host, o.httpPort);
    addresses.push(`dns http ${hostPort(o.host, ports.http)} (DoH /dns-query, JSON /resolve)`);
    closers.push(() => new Promise<void>((r) => server.close(() => r())));
    closers.push(async () => server.closeAllConnections());
  }

  if (o.tlsPort !== undefined) {
    if (!o.tls) throw new Error("a TLS port needs dns.tls_cert and dns.tls_key");
    const server = createSecureServer({ ...o.tls, allowHTTP1: true }, (req, res) => void serveHttp(req, res));
    server.maxConnections = o.maxTcpConnections;
    server.on("sessionError", () => {});
    server.on("tlsClientError", () => {});
    ports.tls = await listen(server, o.host, o.tlsPort);
    addresses.push(`dns https ${hostPort(o.host, ports.tls)} (DoH /dns-query over HTTP/2 and HTTP/1.1)`);
    closers.push(() => new Promise<void>((r) => server.close(() => r())));
  }

  return {
    addresses,
    ports,
    dnsSockets,
    async close() {
      await Promise.all(closers.map((c) => c().catch(() => {})));
    },
  };
}

function listen(server: TcpServer | { listen: TcpServer["listen"]; address: TcpServer["address"]; once: TcpServer["once"]; off: TcpServer["off"] }, host: string, port: number): Promise<number> {
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
async function bindDns(host: string, port: number): Promise<{ udp: UdpSocket; tcp: TcpServer; port: number }> {
  for (let attempt = 0; ; attempt++) {
    const udp = createSocket({ type: isIPv6(host) ? "udp6" : "udp4" });
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(port, host, () => {
        udp.off("error", reject);
        resolve();
      });
    });
    const chosen = udp.address().port;
    const tcp = createTcpServer({ allowHalfOpen: true });
    try {
      await listen(tcp, host, chosen);
      return { udp, tcp, port: chosen };
    } catch (err) {
      udp.close();
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
