/** Free TCP ports for the processes a test starts (port 0 where a program can report its port is better still). */
import { createServer } from "node:net";

/** A TCP port free on `host` right now. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A TCP port free on every one of `hosts` (edges sharing one port on several loopback addresses). */
export async function portFreeOn(hosts: string[]): Promise<number> {
  const tryListen = (host: string, port: number) =>
    new Promise<number | null>((resolve) => {
      const s = createServer();
      s.once("error", () => resolve(null));
      s.listen(port, host, () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await tryListen(hosts[0]!, 0);
    if (port === null) continue;
    let ok = true;
    for (const h of hosts.slice(1)) if ((await tryListen(h, port)) === null) ok = false;
    if (ok) return port;
  }
  throw new Error("no port free on every edge address");
}
