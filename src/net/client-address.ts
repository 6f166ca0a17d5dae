/**
 * The client's address as a worker sees it. Only the connection is believed — workerd's `request.cf.clientIp`
 * (`ip:port`, `[ip]:port` for IPv6), or the UDP/TCP peer in the DNS host — unless the operator listed the connecting
 * proxy as trusted; then the right-most X-Forwarded-For address that is not itself a trusted proxy is the client.
 */
import { inCidr, parseIp, type Cidr, type IpBytes } from "./ip.ts";

/** workerd's `cf.clientIp` is "ip:port" or "[ip]:port" (sometimes without a port): the address alone. */
export function stripPort(peer: string): string {
  const t = peer.trim();
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(t);
  if (bracket) return bracket[1]!;
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3})(?::\d+)?$/.exec(t);
  if (v4) return v4[1]!;
  return t; // bare IPv6
}

/**
 * The connecting peer of a worker request: workerd's cf.clientIp; else CF-Connecting-IP, which only Miniflare sets
 * (and which a client can forge there: Miniflare is for local development).
 */
export function peerAddress(request: Request): string | undefined {
  const cf = (request as { cf?: { clientIp?: unknown } }).cf;
  if (typeof cf?.clientIp === "string" && cf.clientIp) return cf.clientIp;
  return request.headers.get("cf-connecting-ip") ?? undefined;
}

/**
 * The address to act on: the peer; when the peer is a trusted proxy, the right-most X-Forwarded-For entry that is
 * not itself a trusted proxy. Null when nothing usable is known.
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | null, trusted: Cidr[]): IpBytes | null {
  const peerBytes = peer ? parseIp(stripPort(peer)) : null;
  if (!peerBytes) return null;
  const isTrusted = (b: Uint8Array) => trusted.some((c) => inCidr(b, c));
  if (!forwardedFor || !isTrusted(peerBytes)) return peerBytes;
  const hops = forwardedFor.split(",").map((s) => s.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    const b = parseIp(stripPort(hops[i]!));
    if (!b) return peerBytes; // garbage in the chain: believe nothing past it
    if (!isTrusted(b)) return b;
  }
  return peerBytes;
}

/**
 * The host a request was first made for, as X-Forwarded-Host names it, when it is one valid host[:port] (one value,
 * lower case); undefined otherwise.
 */
export function forwardedHost(value: string | null): string | undefined {
  if (!value) return undefined;
  const host = value.trim().toLowerCase();
  const url = URL.parse(`http://${host}/`);
  return url && url.host === host ? host : undefined;
}
