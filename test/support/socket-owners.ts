/**
 * Connections and the processes that hold them: GETs over one keep-alive connection each (an Agent with one socket),
 * and which process holds the server side of a connection, by the kernel's socket table (`ss -tnp`).
 */
import { execFileSync } from "node:child_process";
import { get as httpGet, type Agent } from "node:http";

/** The pid holding the server side of each established connection to `port`, by the client's port. */
export function serverPids(port: string): Map<number, number> {
  const owners = new Map<number, number>();
  const lines = execFileSync("ss", ["-Htnp", "state", "established", `( sport = :${port} )`], { encoding: "utf8" }).split("\n");
  for (const line of lines) {
    const peer = /:(\d+)\s+users:/.exec(line)?.[1];
    const pid = /pid=(\d+)/.exec(line)?.[1];
    if (peer && pid) owners.set(Number(peer), Number(pid));
  }
  return owners;
}

export interface ConnectionAnswer {
  status: number;
  body: string;
  xcs: string | undefined;
  /** The client's port of the connection that carried it (what serverPids is keyed by). */
  port: number;
}

/**
 * One GET of `path` at `base` through `agent` (give each agent `maxSockets: 1`: one connection, kept open for its next
 * request); `connected` settles once the TCP handshake is done, which is when the kernel chose the listening socket.
 */
export function getOver(
  base: string,
  agent: Agent,
  path: string,
  headers: Record<string, string> = {},
): { connected: Promise<void>; answer: Promise<ConnectionAnswer> } {
  const { hostname, port } = new URL(base);
  let connected!: () => void;
  const isConnected = new Promise<void>((r) => (connected = r));
  const answer = new Promise<ConnectionAnswer>((done, fail) => {
    const req = httpGet({ host: hostname, port, path, agent, headers }, (res) => {
      const clientPort = res.socket.localPort!; // read now: at the end the socket is back in the agent's pool
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => done({ status: res.statusCode!, body, xcs: res.headers["x-cache-status"] as string | undefined, port: clientPort }));
    });
    req.on("socket", (s) => (s.connecting ? s.once("connect", connected) : connected()));
    req.on("error", fail);
  });
  return { connected: isConnected, answer };
}
