/**
 * Serves a standard fetch handler (Request → Response) over node:http, bodies streamed both ways. The demo origin
 * and the tests' scripted origin use it; a handler that throws `DropConnection` makes the socket close without an
 * answer (an origin that dies mid-request).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Readable } from "node:stream";
import type { AddressInfo } from "node:net";

export class DropConnection extends Error {}

export type FetchHandler = (request: Request, peer: { address: string }) => Response | Promise<Response>;

export interface Served {
  server: Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

export function toRequest(req: IncomingMessage, origin: string): Request {
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  return new Request(new URL(req.url ?? "/", origin), {
    method: req.method,
    headers,
    body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : null,
    duplex: "half",
  } as RequestInit);
}

export async function writeResponse(res: ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie") headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length) headers["set-cookie"] = cookies;
  res.writeHead(response.status, response.statusText || undefined, headers);
  if (!response.body) return void res.end();
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!res.write(value)) await new Promise<void>((resolve) => res.once("drain", resolve));
    }
    res.end();
  } catch {
    res.destroy();
  }
}

/** Listens on host:port (port 0 = a free one) and resolves once ready. */
export function serveFetch(handler: FetchHandler, opts: { port?: number; host?: string } = {}): Promise<Served> {
  const host = opts.host ?? "127.0.0.1";
  const server = createServer(async (req, res) => {
    try {
      const response = await handler(toRequest(req, `http://${req.headers.host ?? host}`), {
        address: req.socket.remoteAddress ?? "",
      });
      await writeResponse(res, response);
    } catch (err) {
      if (err instanceof DropConnection) return void req.socket.destroy();
      res.writeHead(500, { "content-type": "text/plain" }).end(`500 ${(err as Error).message}\n`);
    }
  });
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      const port = (server.address() as AddressInfo).port;
      const hostPart = host.includes(":") ? `[${host}]` : host;
      resolve({
        server,
        port,
        url: `http://${hostPart}:${port}`,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
