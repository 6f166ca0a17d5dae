/** Free TCP ports for the processes a test starts (port 0 where a program can report its port is better still). */
import { readFileSync } from "node:fs";
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

/** Waits (bounded) until a socket listens on TCP `port` (read from /proc/net, so the server sees no probe
 * connection: some, like `openssl ocsp`, serve one client at a time). */
export async function waitListening(port: number, ms = 20_000): Promise<void> {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")} `;
  const listening = () =>
    ["/proc/net/tcp", "/proc/net/tcp6"].some((f) =>
      readFileSync(f, "utf8").split("\n").some((line) => {
        const cols = line.trim().split(/\s+/);
        return `${cols[1]} `.endsWith(hex) && cols[3] === "0A"; // local address, state LISTEN
      }),
    );
  const deadline = Date.now() + ms;
  while (!listening()) {
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
