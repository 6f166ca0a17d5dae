/** Which process holds the server side of TCP connections, by the kernel's socket table (`ss -tnp`). */
import { execFileSync } from "node:child_process";

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
