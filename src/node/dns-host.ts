/**
 * Node host for the GeoDNS fetch handler: classic DNS over UDP and TCP (workerd has no UDP), plain-HTTP DoH, and DoH
 * over TLS with HTTP/2 + HTTP/1.1. Every query goes to the same fetch handler with the peer as `cf.clientIp`.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { createServer as createTcpServer, isIPv6, type Server as TcpServer, type Socket } from "node:net";
import { requestedUdpSize, truncateAnswer } from "../dns/wire.ts";

export type FetchHandler = (request: Request) => Promise<Response>;

export interface HostOptions {
  fetch: FetchHandler;
  host: string;
  /** Port numbers; 0 picks a free one (the UDP and TCP DNS ports are the same number). */
  dnsPort?: number;
  httpPort?: number;
  tlsPort?: number;
  tls?: { cert: Buffer | string; key: Buffer | string };
  /** Largest UDP answer whatever the client advertises. */
  maxUdpSize: number;
  maxInflight: number;
  maxTcpConnections: number;
  log?: (line: string) => void;
}

export interface Host {
  /** Listener lines, e.g. "dns udp+tcp 127.0.0.1:5353". */
  addresses: string[];
  ports: { dns?: number; http?: number; tls?: number };
  close(): Promise<void>;
}

const MAX_MESSAGE = 65535;
const TCP_IDLE_MS = 10_000;
const TCP_PIPELINE = 32;

const hostPort = (host: string, port: number) => (isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`);

/** Starts the listeners; resolves once all are bound. */
export async function startHost(o: HostOptions): Promise<Host> {
  let inflight = 0;
  const log = o.log ?? (() => {});

  /** One DNS message through the fetch handler; null when it answered with an HTTP error (drop). */
  async function ask(msg: Uint8Array, peer: string, port: number): Promise<Uint8Array | null> {
    const req = new Request("http://dns.local/dns-query", {
      method: "POST",
      headers: { "content-type": "application/dns-message" },
      body: msg,
    });
    Object.defineProperty(req, "cf", { value: { clientIp: hostPort(peer, port) } });
    const res = await o.fetch(req);
    if (res.status !== 200) {
      await res.body?.cancel();
      return null;
    }
    return new Uint8Array(await res.arrayBuffer());
  }

  const closers: (() => Promise<void>)[] = [];
  const addresses: string[] = [];
  const ports: Host["ports"] = {};

  if (o.dnsPort !== undefined) {
    const { udp, tcp, port } = await bindDns(o.host, o.dnsPort);
    ports.dns = port;
    udp.on("message", (msg: Buffer, rinfo: RemoteInfo) => {
      if (inflight >= o.maxInflight || msg.length < 12) return; // shed load / not DNS: drop
      inflight++;
      ask(msg, rinfo.address, rinfo.port)
        .then((answer) => {
          if (!answer) return;
          const limit = Math.min(requestedUdpSize(msg), o.maxUdpSize);
          udp.send(truncateAnswer(answer, limit), rinfo.port, rinfo.address);
        })
        .catch((err) => log(`dns udp: ${(err as Error).message}`))
        .finally(() => inflight--);
    });
    udp.on("error", (err) => log(`dns udp: ${err.message}`));
    tcp.maxConnections = o.maxTcpConnections;
    tcp.on("connection", (sock) => serveTcp(sock));
    tcp.on("error", (err) => log(`dns tcp: ${err.message}`));
    addresses.push(`dns udp+tcp ${hostPort(o.host, port)}`);
    closers.push(
      () => new Promise<void>((r) => udp.close(() => r())),
      () => new Promise<void>((r) => tcp.close(() => r())),
    );
  }

  function serveTcp(sock: Socket) {
    let buf = Buffer.alloc(0);
    let pending = 0;
    let ended = false;
    // The client may half-close after its last query: answer everything, then close.
    sock.on("end", () => {
      ended = true;
      if (pending === 0) sock.end();
    });
    sock.setNoDelay(true);
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    sock.on("error", () => sock.destroy());
    const peer = sock.remoteAddress ?? "";
    const port = sock.remotePort ?? 0;
    sock.on("data", (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        if (len < 12) continue; // not a DNS message: skip it (the framing is intact)
        pending++;
        inflight++;
        if (pending >= TCP_PIPELINE) sock.pause();
        ask(Buffer.from(msg), peer, port)
          .then((answer) => {
            if (!answer || sock.destroyed) return;
            const frame = Buffer.allocUnsafe(2 + answer.length);
            frame.writeUInt16BE(answer.length, 0);
            frame.set(answer, 2);
            sock.write(frame);
          })
          .catch((err) => {
            log(`dns tcp: ${(err as Error).message}`);
            sock.destroy();
          })
          .finally(() => {
            inflight--;
            if (--pending < TCP_PIPELINE && sock.isPaused()) sock.resume();
            if (pending === 0 && ended) sock.end();
          });
      }
    });
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
