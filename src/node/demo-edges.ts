/**
 * Which `[[edges]]` entries `npm start` runs on this machine, and on which addresses: every entry whose url names an
 * address of this machine (the default config's 127.0.0.2–4), all on `--port`; `--edge-hosts A,B,…` moves them, in
 * order, to other addresses of this machine (a LAN address to reach the CDN from elsewhere), and the director
 * answers those. `--dns-host` is the DNS node's address. Pure: the machine's addresses are given.
 */
import { isIP } from "node:net";

/** An edge npm start runs: its name, the address it listens on and its base URL. */
export interface LocalEdge {
  name: string;
  host: string;
  url: string;
}

/** An address in a URL's authority (IPv6 in brackets). */
export function urlHost(address: string): string {
  return isIP(address) === 6 ? `[${address}]` : address;
}

/** Whether `address` is one this machine can listen on: all of 127.0.0.0/8, ::1, or an interface's address. */
export function isLocalAddress(address: string, interfaces: string[]): boolean {
  return (isIP(address) === 4 && address.startsWith("127.")) || address === "::1" || interfaces.includes(address);
}

function parseHosts(flag: string, value: string, interfaces: string[]): string[] {
  const hosts = value.split(",").map((h) => h.trim().replace(/^\[(.*)\]$/, "$1"));
  for (const h of hosts) {
    if (!isIP(h)) throw new Error(`--${flag}: ${JSON.stringify(h)} is not an IP address`);
    if (!isLocalAddress(h, interfaces)) {
      const others = interfaces.filter((a) => !isLocalAddress(a, []));
      throw new Error(`--${flag}: ${h} is not an address of this machine (it has 127.0.0.0/8, ::1${others.map((a) => `, ${a}`).join("")})`);
    }
  }
  return hosts;
}

/**
 * Sets each local edge's url (and, moved by --edge-hosts, the address the director answers for it) in `edges`, the
 * effective config's [[edges]] as parsed TOML, and returns the edges to run. Errors name the flag and the reason.
 */
export function placeLocalEdges(
  edges: Array<Record<string, unknown>>,
  opts: { port: string; edgeHosts?: string; interfaces: string[] },
): LocalEdge[] {
  const moved = opts.edgeHosts === undefined ? [] : parseHosts("edge-hosts", opts.edgeHosts, opts.interfaces);
  const local: LocalEdge[] = [];
  for (const e of edges) {
    if (typeof e.url !== "string") continue;
    const u = new URL(e.url);
    const listed = u.hostname.replace(/^\[(.*)\]$/, "$1");
    if (!isLocalAddress(listed, opts.interfaces)) continue;
    const host = moved[local.length] ?? listed;
    if (host !== listed) {
      // The director hands out the new address. Moved to IPv6, the edge leaves its IPv4 address, so A answers go;
      // moved to IPv4, a configured IPv6 address stays (the default config's are documentation addresses).
      if (isIP(host) === 4) e.ipv4 = host;
      else {
        e.ipv6 = host;
        delete e.ipv4;
      }
    }
    u.hostname = urlHost(host);
    u.port = opts.port;
    e.url = u.origin;
    local.push({ name: String(e.name), host, url: u.origin });
  }
  if (moved.length > local.length) {
    throw new Error(`--edge-hosts: ${moved.length} addresses for ${local.length} [[edges]] with a url on this machine`);
  }
  const twice = local.find((e, i) => local.findIndex((o) => o.host === e.host) !== i);
  if (twice) throw new Error(`--edge-hosts: two edges on ${twice.host} (each edge needs its own address; they share --port)`);
  return local;
}

/** The DNS node's address: one of this machine's, or every address (0.0.0.0, ::). */
export function dnsHost(value: string, interfaces: string[]): string {
  const h = value.replace(/^\[(.*)\]$/, "$1");
  if (h === "0.0.0.0" || h === "::") return h;
  return parseHosts("dns-host", h, interfaces)[0]!;
}
