/**
 * The client's address as a worker sees it. Only the connection is believed — workerd's `request.cf.clientIp`
 * (`ip:port`, `[ip]:port` for IPv6) — unless the operator listed the connecting proxy as trusted, in which case the
 * rightmost X-Forwarded-For address that is not itself a trusted proxy is the client.
 */

/** Parses an IPv4 or IPv6 address to a 128-bit BigInt (IPv4 as ::ffff:a.b.c.d); undefined when invalid. */
export function parseIp(text: string): { value: bigint; v4: boolean } | undefined {
  const s = text.trim();
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (v4) {
    const octets = v4.slice(1).map(Number);
    if (octets.some((o) => o > 255)) return undefined;
    return { value: 0xffff00000000n | BigInt(((octets[0]! << 24) >>> 0) + (octets[1]! << 16) + (octets[2]! << 8) + octets[3]!), v4: true };
  }
  if (!s.includes(":") || !/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  let head = s;
  let tailV4: bigint | undefined;
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    const embedded = parseIp(s.slice(lastColon + 1));
    if (!embedded?.v4) return undefined;
    tailV4 = embedded.value & 0xffffffffn;
    head = s.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return undefined;
  const parse = (h: string) => (h === "" ? [] : h.split(":"));
  const left = parse(halves[0]!);
  const right = halves.length === 2 ? parse(halves[1]!) : [];
  const missing = 8 - left.length - right.length;
  if ((halves.length === 1 && missing !== 0) || missing < 0 || (halves.length === 2 && missing < 1)) return undefined;
  const groups = [...left, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...right];
  let value = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  if (tailV4 !== undefined) value = (value & ~0xffffffffn) | tailV4;
  const mapped = value >> 32n === 0xffffn;
  return { value, v4: mapped };
}

/** Whether `ip` lies in `cidr` (`10.0.0.0/8`, `2001:db8::/32`, or a bare address). */
export function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split("/");
  const addr = parseIp(ip);
  const net = parseIp(base!);
  if (!addr || !net || addr.v4 !== net.v4) return false;
  const max = net.v4 ? 32 : 128;
  const bits = bitsText === undefined ? max : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > max) return false;
  const shift = BigInt(128 - (net.v4 ? 96 + bits : bits));
  return addr.value >> shift === net.value >> shift;
}

/** Strips the port from workerd's `ip:port` / `[ip]:port`. */
export function stripPort(peer: string): string {
  if (peer.startsWith("[")) return peer.slice(1, peer.indexOf("]"));
  const colons = peer.split(":").length - 1;
  return colons === 1 ? peer.slice(0, peer.indexOf(":")) : peer;
}

/** The connecting peer: workerd's cf.clientIp, else the runtime-set CF-Connecting-IP (Miniflare, local only). */
export function peerAddress(request: Request): string | undefined {
  const cf = (request as { cf?: { clientIp?: unknown } }).cf;
  if (typeof cf?.clientIp === "string" && cf.clientIp) return stripPort(cf.clientIp);
  return request.headers.get("cf-connecting-ip") ?? undefined;
}

/** The client address, believing X-Forwarded-For only from trusted proxies. */
export function clientAddress(request: Request, trustedProxies: string[]): string | undefined {
  const peer = peerAddress(request);
  if (!peer || !trustedProxies.length) return peer;
  const trusted = (ip: string) => trustedProxies.some((c) => inCidr(ip, c));
  if (!trusted(peer)) return peer;
  const chain = (request.headers.get("x-forwarded-for") ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => parseIp(s));
  for (let i = chain.length - 1; i >= 0; i--) if (!trusted(chain[i]!)) return chain[i];
  return chain[0] ?? peer;
}
