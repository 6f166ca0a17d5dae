/**
 * What the purge benchmarks (purge.sh, purge-rate.sh) share: a free port, a cacheable origin, and a GET that tells the
 * answer's X-Cache-Status (over keep-alive connections). Benchmark code, not part of the CDN.
 */
import { Agent, createServer, request, type Server } from "node:http";

export const freePort = (host = "127.0.0.1") =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, host, () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

/** An origin answering every path with a small body cacheable for an hour, on 127.0.0.1. */
export async function startBenchOrigin(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    res.writeHead(200, { "cache-control": "max-age=3600", etag: '"b"', "content-type": "text/plain" }).end("bench body " + req.url);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { url: "http://127.0.0.1:" + (server.address() as { port: number }).port, server };
}

export const agent = new Agent({ keepAlive: true, maxSockets: 8 });

/** GET `path` at an edge as www.example.org: the answer's X-Cache-Status. */
export function cacheStatus(host: string, port: number, path: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, agent, headers: { host: "www.example.org" } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.headers["x-cache-status"] as string | undefined));
    });
    req.on("error", reject);
    req.end();
  });
}
