/**
 * A loopback TCP proxy the tests can cut between an edge box and NATS, two ways:
 *   cut("close")  every connection is closed and new ones refused (the peer notices at once)
 *   cut("silent") bytes stop flowing both ways and new connections hang (a partition: only pings notice)
 * `restore()` forwards again (silent connections are dropped then; the client has given up on them).
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";

export interface TcpProxy {
  port: number;
  /** Connections accepted so far (forwarded or, while cut silently, left hanging). */
  readonly accepted: number;
  cut(how: "close" | "silent"): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, host = "127.0.0.1"): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket | undefined]>();
  let server: Server | undefined;
  let port = 0;
  let silent = false;
  let accepted = 0;
  const drop = (pair: [Socket, Socket | undefined]) => {
    pair[0].destroy();
    pair[1]?.destroy();
    pairs.delete(pair);
  };
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        accepted++;
        client.on("error", () => undefined);
        if (silent) {
          const pair: [Socket, Socket | undefined] = [client, undefined];
          pairs.add(pair);
          client.pause();
          return;
        }
        const upstream = createConnection({ host, port: targetPort });
        upstream.on("error", () => undefined);
        const pair: [Socket, Socket | undefined] = [client, upstream];
        pairs.add(pair);
        client.pipe(upstream);
        upstream.pipe(client);
        client.once("close", () => drop(pair));
        upstream.once("close", () => drop(pair));
      });
      s.once("error", reject);
      s.listen(port, host, () => {
        port = (s.address() as { port: number }).port;
        server = s;
        resolve();
      });
    });
  const closeServer = async () => {
    const s = server;
    server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  };
  await listen();
  return {
    get port() {
      return port;
    },
    get accepted() {
      return accepted;
    },
    async cut(how) {
      if (how === "silent") {
        silent = true;
        for (const [client, upstream] of pairs) {
          client.unpipe();
          upstream?.unpipe();
          client.pause();
          upstream?.pause();
        }
        return;
      }
      const s = closeServer();
      for (const pair of [...pairs]) drop(pair);
      await s;
    },
    async restore() {
      for (const pair of [...pairs]) drop(pair);
      silent = false;
      if (!server) await listen();
    },
    async close() {
      const s = closeServer();
      for (const pair of [...pairs]) drop(pair);
      await s;
    },
  };
}
