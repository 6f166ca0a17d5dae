/**
 * Schema of `[anycast]`: the prefixes this box announces over BGP while its service is healthy, the BGP sessions
 * (`[[anycast.neighbors]]`) and the health hysteresis. The BIRD config is generated from it (src/anycast/bird-config.ts),
 * so everything that reaches that file is checked here: names are BIRD symbols, strings cannot close their quotes.
 */
import { z } from "zod";
import { maskIp, parseCidr, parseIp } from "../net/ip.ts";

const asn = z
  .number()
  .int()
  .min(1, "an AS number from 1 to 4294967295")
  .max(4294967295, "an AS number from 1 to 4294967295")
  .refine((n) => n !== 23456, "23456 is AS_TRANS, not a real AS");
const u32 = z.number().int().min(0).max(4294967295);
const port = z.number().int().min(1).max(65535);

/** An announced network: host bits zero, not wider than a /8 (IPv4) or /16 (IPv6): nobody's default route. */
const prefix = z.string().superRefine((text, ctx) => {
  const cidr = /\//.test(text) ? parseCidr(text) : null;
  if (!cidr) return void ctx.addIssue({ code: "custom", message: `"${text}" is not a network such as 192.0.2.0/24 or 2001:db8::/48` });
  const [addr] = text.split("/");
  const bytes = parseIp(addr!)!;
  if (maskIp(bytes, cidr.prefix).some((b, i) => b !== bytes[i])) {
    ctx.addIssue({ code: "custom", message: `"${text}" has host bits set: write the network address` });
  }
  const min = bytes.length === 4 ? 8 : 16;
  if (cidr.prefix < min) ctx.addIssue({ code: "custom", message: `"${text}" is wider than /${min}: not an anycast prefix` });
});

/** `a:b` (16-bit halves, RFC 1997) or a large community `a:b:c` (32-bit parts, RFC 8092). */
const community = z.string().superRefine((text, ctx) => {
  const parts = text.split(":");
  const max = parts.length === 2 ? 65535 : parts.length === 3 ? 4294967295 : -1;
  if (max < 0 || parts.some((p) => !/^\d{1,10}$/.test(p) || Number(p) > max)) {
    ctx.addIssue({ code: "custom", message: `"${text}" is not a community "asn:value" (16-bit parts) or large community "asn:a:b" (32-bit parts)` });
  }
});

const ip = z.string().refine((s) => parseIp(s) !== null && !s.includes("/"), "an IPv4 or IPv6 address");
/** The family as BIRD reads the text (an IPv4-mapped IPv6 address is IPv6 there). */
const familyOf = (address: string) => (address.includes(":") ? "ipv6" : "ipv4");

/** One BGP session, to a provider's router (or a route server). */
export const NeighborSchema = z
  .object({
    /** Names the session; the BIRD protocol is `peer_<name>` (birdc show protocols all peer_<name>). */
    name: z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,31}$/, "a letter, then letters, digits or '_' (at most 32)"),
    /** The router's address; the session carries the prefixes of this address's family. */
    address: ip,
    as: asn,
    port: port.default(179),
    /** This box's address for the session (and strict bind to it); the provider knows the session by it. */
    local_address: ip.optional(),
    /** Port this box's speaker listens on for the session (default 179). */
    local_port: port.optional(),
    /** The router is not directly connected: the session's TTL (the provider says, e.g. 2). */
    multihop: z.number().int().min(1).max(255).optional(),
    /** BGP hold time in seconds (BIRD's default 240): how long a router keeps routes of a box that went silent. */
    hold_time: z.number().int().min(3).max(65535).optional(),
    /** TCP MD5 password (RFC 2385), if the provider sets one. */
    password: z
      .string()
      .regex(/^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,80}$/, "1 to 80 printable ASCII characters without quotes or backslashes")
      .optional(),
  })
  .strict()
  .refine((n) => !n.local_address || familyOf(n.local_address) === familyOf(n.address), {
    message: "local_address must be of the same address family as address",
    path: ["local_address"],
  });

export const AnycastSchema = z
  .object({
    /** Which command on this box announces: the edge box (`npm run edge`) or the DNS node (`npm run dns`). */
    service: z.enum(["edge", "dns"]),
    /** The anycast networks (IPv4 and/or IPv6), announced while the service is healthy. */
    prefixes: z.array(prefix).min(1).max(64),
    local_as: asn,
    /** BGP identifier (an IPv4 address, usually the box's own); BIRD picks one from the interfaces when absent. */
    router_id: z.ipv4().optional(),
    /** Communities added to every announcement (e.g. the provider's "do not export to peers" community). */
    communities: z.array(community).max(32).default([]),
    /** MULTI_EXIT_DISC on the announcements: a higher MED makes a standby box less preferred by the same provider. */
    med: u32.optional(),
    /** Prepend the local AS this many more times: a standby box, less preferred by every network. */
    prepend: z.number().int().min(0).max(10).default(0),
    /** Health checks of this box's own service (HTTP health endpoint / a DNS query over UDP), as `[dns.health]`. */
    interval_ms: z.number().int().min(50).max(600_000).default(1000),
    timeout_ms: z.number().int().min(10).max(600_000).default(800),
    /** Failed checks in a row before the announcement is withdrawn. */
    down_after: z.number().int().min(1).max(1000).default(3),
    /** Good checks in a row before it is announced (also at start: a new box earns its traffic). */
    up_after: z.number().int().min(1).max(1000).default(3),
    /** On a planned stop: withdraw, wait this long (routers converge, connections finish), then stop serving. */
    withdraw_grace_ms: z.number().int().min(0).max(600_000).default(5000),
    /** The generated bird.conf and BIRD's control socket (bird.ctl) go here. */
    run_dir: z.string().min(1).default("/run/parrot-cdn"),
    bird: z.string().min(1).default("/usr/sbin/bird"),
    birdc: z.string().min(1).default("/usr/sbin/birdc"),
    /** host:port for the announcer's /metrics and /status.json (loopback, say); none when absent. Port 0: any free. */
    metrics_listen: z
      .string()
      .regex(/^(\[[0-9A-Fa-f:.]+\]|[0-9.]+|localhost):\d{1,5}$/, 'host:port such as "127.0.0.1:9180" or "[::1]:9180"')
      .optional(),
    neighbors: z.array(NeighborSchema).min(1).max(64),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.timeout_ms > a.interval_ms) ctx.addIssue({ code: "custom", message: "timeout_ms must not exceed interval_ms", path: ["timeout_ms"] });
    const seen = new Set<string>();
    a.neighbors.forEach((n, i) => {
      if (seen.has(n.name)) ctx.addIssue({ code: "custom", message: `neighbor name "${n.name}" is used twice`, path: ["neighbors", i, "name"] });
      seen.add(n.name);
    });
    const families = new Set(a.neighbors.map((n) => familyOf(n.address)));
    a.prefixes.forEach((p, i) => {
      const family = familyOf(p);
      if (parseCidr(p) && !families.has(family)) {
        ctx.addIssue({ code: "custom", message: `${p} is ${family === "ipv6" ? "IPv6" : "IPv4"} but no neighbor has an address of that family`, path: ["prefixes", i] });
      }
    });
  });

export type AnycastConfig = z.infer<typeof AnycastSchema>;
export type NeighborConfig = z.infer<typeof NeighborSchema>;
