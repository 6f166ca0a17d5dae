/**
 * The one Node ↔ fetch adapter: serves a standard fetch handler (Request → Response) over node:http, or over TLS with
 * HTTP/2 and HTTP/1.1 (ALPN) when given a certificate. The demo origin, the tests' scripted origin and the DNS node's
 * DoH listeners use it. A handler that throws `DropConnection` makes the socket close without an answer (an origin
 * that dies mid-request).
 *
 * Without `limits` bodies stream both ways (origins). With `limits` (a listener facing hostile clients) every bound
 * holds: connections per listener and per client (src/net/connection-limits.ts: a new connection gets in, the oldest
 * idle one goes), a TLS handshake deadline, a deadline for a whole request (headers from the moment the connection is
 * ready for one, then the body; bytes trickling in do not extend it), an idle timeout, and clear HTTP errors: 400 for
 * a malformed request (bad Content-Length), 413 for a body over the limit, 414 for a long URL, 431 for large headers.
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import { Readable } from "node:stream";
import { ConnectionLimits, clientKey, type LimitSettings } from "../net/connection-limits.ts";

export class DropConnection extends Error {}

/** The connecting peer of a request. */
export interface Peer {
  address: string;
  port: number;
}

export type FetchHandler = (request: Request, peer: Peer) => Response | Promise<Response>;

/** Bounds for a listener facing hostile clients. */
export interface HttpLimits {
  connections: LimitSettings;
  /** A request (its headers, then its body) must arrive within this. */
  messageMs: number;
  /** A connection without a request in progress closes after this. */
  idleMs: number;
  /** TLS handshakes must finish within this. */
  handshakeMs: number;
  maxBodyBytes: number;
  maxUrlBytes: number;
  maxHeaderBytes: number;
}

export interface ServeOptions {
  port?: number;
  host?: string;
  /** PEM certificate chain and key: HTTPS with HTTP/2 and HTTP/1.1. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  limits?: HttpLimits;
  /** Where errors of the adapter itself go (a handler that throws, a broken socket). */
  log?: (line: string) => void;
}

export interface Served {
  server: HttpServer | Http2SecureServer;
  port: number;
  url: string;
  /** Connections closed to make room for new ones (with `limits`). */
  evicted(): number;
  /** New TLS certificate and key for new connections (existing ones keep theirs). */
  setTls(tls: { cert: string | Buffer; key: string | Buffer }): void;
  close(): Promise<void>;
}

type AnyRequest = IncomingMessage | Http2ServerRequest;
type AnyResponse = ServerResponse | Http2ServerResponse;

/** Headers HTTP/2 forbids, and that the adapter sets itself on HTTP/1.1. */
const CONNECTION_HEADERS = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"]);

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large",
};

/** A request's URL: the path and query as sent, under `origin`. */
function requestUrl(req: AnyRequest, origin: string): URL {
  return new URL(req.url?.startsWith("/") ? req.url : "/", origin);
}

function requestHeaders(req: AnyRequest): Headers {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (!raw[i]!.startsWith(":")) headers.append(raw[i]!, raw[i + 1]!);
  return headers;
}

async function writeResponse(res: AnyResponse, response: Response, h2: boolean, head: boolean): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie" && !(h2 && CONNECTION_HEADERS.has(name))) headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length) headers["set-cookie"] = cookies;
  const r = res as ServerResponse;
  if (h2 || !response.statusText) r.writeHead(response.status, headers);
  else r.writeHead(response.status, response.statusText, headers);
  if (!response.body || head) {
    await response.body?.cancel();
    return void r.end();
  }
  const reader = response.body.getReader();
  // The client gone (the connection closed mid-body): the handler's body is cancelled, as a runtime would.
  const gone = () => void reader.cancel(new Error("the client closed the connection")).catch(() => undefined);
  r.once("close", gone);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!r.write(value)) await drained(r);
    }
    r.off("close", gone);
    r.end();
  } catch {
    r.destroy();
  }
}

/** Resolves when a response can take more, or its connection closed. */
function drained(r: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      r.off("drain", done);
      r.off("close", done);
      resolve();
    };
    r.once("drain", done);
    r.once("close", done);
  });
}

/** A short plain-text error answer. */
function plainError(res: AnyResponse, status: number, text: string): void {
  const r = res as ServerResponse;
  if (r.headersSent) return void r.destroy();
  const body = `${status} ${text}\n`;
  r.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": String(Buffer.byteLength(body)) });
  r.end(body);
}

/** The same error as raw HTTP/1.1 on a socket the parser gave up on (then the connection closes). */
function rawError(socket: Socket, status: number, text: string): void {
  if (!socket.writable) return void socket.destroy();
  const body = `${status} ${text}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Reads a body of at most `max` bytes; "too large" when it is longer. */
async function readBody(req: AnyRequest, max: number): Promise<Buffer | "too large"> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) return "too large";
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Per connection: whether a request is in progress, and its timers. */
interface Conn {
  socket: Socket;
  open: number;
  timer?: ReturnType<typeof setTimeout>;
}

/** Listens on host:port (port 0 = a free one) and resolves once ready. */
export function serveFetch(handler: FetchHandler, opts: ServeOptions = {}): Promise<Served> {
  const host = opts.host ?? "127.0.0.1";
  const limits = opts.limits;
  const log = opts.log ?? (() => {});
  const scheme = opts.tls ? "https" : "http";
  const conns = new Map<string, Conn>();
  const limiter = limits ? new ConnectionLimits<Conn>(limits.connections) : undefined;
  const peerKey = (s: { remoteAddress?: string; remotePort?: number }) => `${s.remoteAddress}|${s.remotePort}`;

  /** Closes the connection after `ms` unless something restarts or clears the timer. */
  const deadline = (c: Conn, ms: number) => {
    clearTimeout(c.timer);
    c.timer = setTimeout(() => c.socket.destroy(), ms);
  };
  const idle = (c: Conn) => {
    limiter?.setIdle(c, true);
    if (limits) deadline(c, limits.idleMs);
  };

  function onConnection(socket: Socket) {
    const c: Conn = { socket, open: 0 };
    const key = peerKey(socket);
    conns.set(key, c);
    socket.once("close", () => {
      clearTimeout(c.timer);
      conns.delete(key);
      limiter?.remove(c);
    });
    if (!limiter || !limits) return;
    for (const victim of limiter.admit(c, clientKey(socket.remoteAddress ?? ""))) victim.socket.destroy();
    // A fresh connection is idle (nothing in progress) but must bring a whole request within the request deadline.
    limiter.setIdle(c, true);
    deadline(c, Math.min(limits.idleMs, limits.messageMs + (opts.tls ? limits.handshakeMs : 0)));
  }

  async function onRequest(req: AnyRequest, res: AnyResponse) {
    const h2 = req.httpVersionMajor === 2;
    const c = conns.get(peerKey(req.socket));
    if (c) {
      c.open++;
      limiter?.setIdle(c, false);
      if (limits) deadline(c, limits.messageMs); // the body must follow within the request deadline
      res.once("close", () => {
        if (--c.open === 0) idle(c);
      });
    }
    const peer = { address: req.socket.remoteAddress ?? "", port: req.socket.remotePort ?? 0 };
    const method = req.method ?? "GET";
    try {
      let body: BodyInit | null = null;
      if (limits) {
        if ((req.url ?? "").length > limits.maxUrlBytes) return plainError(res, 414, `URLs are at most ${limits.maxUrlBytes} bytes`);
        let headerBytes = 0;
        for (const h of req.rawHeaders) headerBytes += h.length + 2;
        if (headerBytes > limits.maxHeaderBytes) return plainError(res, 431, `headers are at most ${limits.maxHeaderBytes} bytes`);
        const declared = req.headers["content-length"];
        if (declared !== undefined && !/^\d+$/.test(declared)) return plainError(res, 400, "bad Content-Length");
        if (declared !== undefined && Number(declared) > limits.maxBodyBytes)
          return plainError(res, 413, `bodies are at most ${limits.maxBodyBytes} bytes`);
        if (method !== "GET" && method !== "HEAD") {
          const read = await readBody(req, limits.maxBodyBytes);
          if (read === "too large") return plainError(res, 413, `bodies are at most ${limits.maxBodyBytes} bytes`);
          body = read;
        }
        if (c && c.open > 0) clearTimeout(c.timer); // the request is in: the handler's own time does not count
      } else if (method !== "GET" && method !== "HEAD") body = Readable.toWeb(req) as ReadableStream<Uint8Array>;
      const authority = (req.headers[":authority"] as string | undefined) ?? req.headers.host ?? host;
      const request = new Request(requestUrl(req, `${scheme}://${authority}`), {
        method,
        headers: requestHeaders(req),
        body,
        duplex: "half",
      } as RequestInit);
      const response = await handler(request, peer);
      await writeResponse(res, response, h2, method === "HEAD");
    } catch (err) {
      if (err instanceof DropConnection) return void req.socket.destroy();
      log(`http: ${(err as Error).message}`);
      plainError(res, 500, (err as Error).message);
    }
  }

  let server: HttpServer | Http2SecureServer;
  if (opts.tls) {
    const s = createSecureServer(
      { ...opts.tls, allowHTTP1: true, ...(limits ? { handshakeTimeout: limits.handshakeMs, settings: { maxConcurrentStreams: 100 } } : {}) },
      (req, res) => void onRequest(req, res),
    );
    s.on("sessionError", () => {});
    s.on("tlsClientError", () => {});
    server = s;
  } else {
    const s = createServer(limits ? { maxHeaderSize: Math.max(16_384, limits.maxUrlBytes + limits.maxHeaderBytes) } : {}, (req, res) => void onRequest(req, res));
    s.keepAliveTimeout = 5_000;
    if (limits) {
      s.headersTimeout = limits.messageMs;
      s.requestTimeout = limits.messageMs;
      s.keepAliveTimeout = limits.idleMs;
    }
    // What the parser refuses gets the status that says why, then the connection closes.
    s.on("clientError", (err: Error & { code?: string; rawPacket?: Buffer }, socket: Socket) => {
      if (err.code === "HPE_HEADER_OVERFLOW") {
        // A request line that does not end within what was read is a long URL; anything else is long headers.
        const raw = err.rawPacket;
        const lineEnd = raw ? raw.indexOf(10) : -1;
        const longUrl = !!raw && /^[A-Z]+ /.test(raw.subarray(0, 16).toString("latin1")) && (lineEnd < 0 || lineEnd > (limits?.maxUrlBytes ?? 16_384));
        return longUrl ? rawError(socket, 414, "URL too long") : rawError(socket, 431, "headers too large");
      }
      else if (err.code === "ECONNRESET" || err.code === "ERR_HTTP_REQUEST_TIMEOUT") socket.destroy();
      else rawError(socket, 400, `malformed request (${err.code ?? err.message})`);
    });
    server = s;
  }
  server.on("connection", onConnection);

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off("error", reject);
      const port = (server.address() as AddressInfo).port;
      const hostPart = host.includes(":") ? `[${host}]` : host;
      resolve({
        server,
        port,
        url: `${scheme}://${hostPart}:${port}`,
        evicted: () => limiter?.evicted ?? 0,
        setTls(tls) {
          if ("setSecureContext" in server) server.setSecureContext(tls);
        },
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            for (const c of conns.values()) c.socket.destroy();
          }),
      });
    });
  });
}
