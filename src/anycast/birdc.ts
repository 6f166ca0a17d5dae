/**
 * Talking to a running BIRD through its own client, `birdc -s <control socket> <command>`, and reading its answers:
 * `show protocols` (is a static protocol enabled, is a BGP session Established) and `show route … all` (what a
 * router learned, for tests and operators). The parsers are pure; `birdc()` runs the client with a time limit.
 */
import { execFile } from "node:child_process";

/** One row of `show protocols` (the generated config sets `timeformat protocol iso long`). */
export interface ProtocolRow {
  name: string;
  proto: string;
  table: string;
  /** up, down, start, stop, flush */
  state: string;
  since: string;
  /** BGP: the session state (Established, Active, Connect, Idle, OpenSent, OpenConfirm, Passive) and the last error. */
  info: string;
}

/** Runs `birdc -s socket …args`; rejects with BIRD's message when the client fails or BIRD answers an error. */
export function birdc(client: string, socket: string, args: string[], timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(client, ["-s", socket, ...args], { timeout: timeoutMs, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      const text = `${stdout}${stderr}`;
      if (err) {
        const why = err.killed ? `timed out after ${timeoutMs} ms` : text.trim().split("\n").slice(-1)[0] || err.message;
        return reject(new Error(`birdc ${args.join(" ")}: ${why}`));
      }
      resolve(stripBanner(stdout));
    });
  });
}

/** birdc prints "BIRD x.y.z ready." first. */
function stripBanner(text: string): string {
  return text.replace(/^BIRD [^\n]* ready\.\n/, "");
}

/** The rows of `show protocols` output. */
export function parseProtocols(text: string): ProtocolRow[] {
  const rows: ProtocolRow[] = [];
  for (const line of stripBanner(text).split("\n")) {
    const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(up|down|start|stop|flush)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s*(.*?)\s*$/.exec(line);
    if (m) rows.push({ name: m[1]!, proto: m[2]!, table: m[3]!, state: m[4]!, since: m[5]!, info: m[6]! });
  }
  return rows;
}

/** A BGP row's session state word (Established, Active, …). */
export function bgpState(row: ProtocolRow): string {
  return row.info.split(/\s+/)[0] || (row.state === "down" ? "Down" : "Unknown");
}

/** One route of `show route … all`. */
export interface RouteInfo {
  prefix: string;
  /** The protocol the route came from (e.g. the router's BGP session with the box). */
  protocol: string;
  /** BGP attributes by name without the `BGP.` prefix: as_path, med, community, large_community, next_hop, … */
  attributes: Record<string, string>;
}

/** The routes of `show route [for …] [protocol …] all` output (several tables, several routes per prefix). */
export function parseRoutes(text: string): RouteInfo[] {
  const routes: RouteInfo[] = [];
  let prefix = "";
  for (const line of stripBanner(text).split("\n")) {
    if (!line.trim() || line.startsWith("Table ")) continue;
    const attr = /^\t(?:BGP\.)?([\w.]+): ?(.*)$/.exec(line);
    if (attr && routes.length) {
      routes[routes.length - 1]!.attributes[attr[1]!] = attr[2]!.trim();
      continue;
    }
    const head = /^(\S*)\s+.*?\[(\S+)\s/.exec(line);
    if (!head) continue;
    if (head[1]) prefix = head[1];
    if (prefix) routes.push({ prefix, protocol: head[2]!, attributes: {} });
  }
  return routes;
}
