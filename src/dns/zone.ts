/**
 * The authoritative zone built from cdn.toml's [dns], [dns.director] and [[edges]]: static records by owner name,
 * the SOA/NS at the apex, and the director (the one tailored name). Pure: config in, lookup tables out.
 */
import { parseIPv4, parseIPv6, formatIp } from "../net/ip.ts";
import type { CdnConfig } from "../config/config.ts";
import type { DnsRecordConfig } from "../config/dns-schema.ts";
import type { Site } from "./select.ts";
import { Buffer } from "node:buffer";
import { splitTxt } from "./txt.ts";
import { asciiLower } from "./wire.ts";

/** A record's type, TTL and dns-packet `data`. */
export interface ZoneRecord {
  type: string;
  ttl: number;
  data: unknown;
}

export interface Director {
  /** Lowercase FQDN without the trailing dot. */
  key: string;
  ttl: number;
  answers: number;
  txt: string;
  tieMargin: number;
  defaults: string[];
  /** Addresses per family answered when too few edges of the family are in service (else fail-open). */
  fallback: { v4: string[]; v6: string[] };
}

export interface Zone {
  /** Lowercase origin without the trailing dot. */
  origin: string;
  originLabels: string[];
  /** "." + origin: names inside the zone end with it. */
  dotOrigin: string;
  ttl: number;
  /** min(SOA TTL, SOA MINIMUM): the TTL of negative answers. */
  negativeTtl: number;
  soa: ZoneRecord;
  /** Static records by lowercase FQDN (no trailing dot), then by type. */
  nodes: Map<string, Map<string, ZoneRecord[]>>;
  /** Every name that exists: owners and their ancestors inside the zone (empty non-terminals answer NODATA). */
  names: Set<string>;
  director: Director;
  sites: Site[];
}

const stripDot = (s: string) => s.replace(/\.$/, "");

/** An absolute lowercase name: "x." is absolute, "x" is relative to the origin, "@" is the origin. */
function absolute(name: string, origin: string): string {
  if (name === "@") return origin;
  if (name.endsWith(".")) return asciiLower(stripDot(name));
  return asciiLower(`${name}.${origin}`);
}

/** A target name for dns-packet: absolute, lowercase (as DNSSEC's canonical form has it), no trailing dot. */
function target(value: string, origin: string): string {
  if (value === "@") return origin;
  return asciiLower(value.endsWith(".") ? stripDot(value) : `${value}.${origin}`);
}

function recordData(r: DnsRecordConfig, origin: string): unknown {
  const fail = (why: string): never => {
    throw new Error(`dns.records ${r.name} ${r.type}: ${why}`);
  };
  const v = r.value.trim();
  switch (r.type) {
    case "A": {
      const b = parseIPv4(v);
      return b ? formatIp(b) : fail("not an IPv4 address");
    }
    case "AAAA": {
      const b = parseIPv6(v);
      return b ? formatIp(b) : fail("not an IPv6 address");
    }
    case "CNAME":
    case "NS":
      return target(v, origin);
    case "TXT":
      return splitTxt(v);
    case "MX": {
      const m = /^(\d+)\s+(\S+)$/.exec(v) ?? fail('expected "preference exchange"');
      return { preference: Number(m[1]), exchange: target(m[2], origin) };
    }
    case "SRV": {
      const m = /^(\d+)\s+(\d+)\s+(\d+)\s+(\S+)$/.exec(v) ?? fail('expected "priority weight port target"');
      return { priority: Number(m[1]), weight: Number(m[2]), port: Number(m[3]), target: target(m[4], origin) };
    }
    case "CAA": {
      const m = /^(\d+)\s+([A-Za-z0-9]+)\s+"?([^"]*)"?$/.exec(v) ?? fail('expected `flags tag "value"`');
      return { flags: Number(m[1]), tag: m[2], value: m[3] };
    }
  }
}

/** A DNSKEY for the apex: flags, algorithm and public key (DNSSEC, dnssec/keys.ts). */
export interface ZoneDnskey {
  flags: number;
  algorithm: number;
  key: Uint8Array;
}

/**
 * Builds the zone (with `dnskeys` published at the apex when the zone is signed); throws with a message naming the
 * field when the config contradicts itself.
 */
export function buildZone(config: CdnConfig, dnskeys: ZoneDnskey[] = []): Zone {
  const dns = config.dns;
  if (!dns) throw new Error("cdn.toml has no [dns] section");
  const origin = asciiLower(stripDot(dns.zone));
  const negativeTtl = Math.min(dns.ttl, dns.negative_ttl ?? dns.ttl);
  const soa: ZoneRecord = {
    type: "SOA",
    ttl: dns.ttl,
    data: {
      mname: asciiLower(stripDot(dns.nameservers[0])),
      rname: asciiLower(stripDot(dns.hostmaster)),
      serial: dns.serial,
      refresh: dns.refresh,
      retry: dns.retry,
      expire: dns.expire,
      minimum: dns.negative_ttl ?? dns.ttl,
    },
  };
  const nodes = new Map<string, Map<string, ZoneRecord[]>>();
  const add = (name: string, rec: ZoneRecord) => {
    let node = nodes.get(name);
    if (!node) nodes.set(name, (node = new Map()));
    const list = node.get(rec.type) ?? [];
    list.push(rec);
    node.set(rec.type, list);
  };
  add(origin, soa);
  for (const ns of dns.nameservers) add(origin, { type: "NS", ttl: dns.ttl, data: asciiLower(stripDot(ns)) });
  const dnskeyTtl = dns.dnssec?.dnskey_ttl ?? dns.ttl;
  for (const k of dnskeys) add(origin, { type: "DNSKEY", ttl: dnskeyTtl, data: { flags: k.flags, algorithm: k.algorithm, key: Buffer.from(k.key) } });
  for (const r of dns.records) {
    const name = absolute(r.name, origin);
    if (name !== origin && !name.endsWith(`.${origin}`)) throw new Error(`dns.records ${r.name}: outside zone ${origin}`);
    add(name, { type: r.type, ttl: r.ttl ?? dns.ttl, data: recordData(r, origin) });
  }
  for (const [name, node] of nodes) {
    if (node.has("CNAME") && (node.size > 1 || node.get("CNAME")!.length > 1))
      throw new Error(`dns.records ${name}: a CNAME cannot share its name with other records`);
  }
  const d = dns.director;
  const director: Director = {
    key: absolute(d.name, origin),
    ttl: d.ttl ?? dns.ttl,
    answers: d.answers,
    txt: d.txt,
    tieMargin: d.tie_margin,
    defaults: d.default,
    fallback: {
      v4: (d.fallback?.ipv4 ?? []).map((a) => formatIp(parseIPv4(a)!)),
      v6: (d.fallback?.ipv6 ?? []).map((a) => formatIp(parseIPv6(a)!)),
    },
  };
  if (nodes.has(director.key)) throw new Error(`dns.director.name ${d.name}: also named in dns.records`);
  const names = new Set<string>();
  for (const name of [...nodes.keys(), director.key]) {
    let n = name;
    for (;;) {
      names.add(n);
      if (n === origin) break;
      n = n.slice(n.indexOf(".") + 1);
    }
  }
  const sites: Site[] = config.edges.map((e) => ({
    name: e.name,
    ipv4: e.ipv4,
    ipv6: e.ipv6 ? formatIp(parseIPv6(e.ipv6)!) : undefined,
    lat: e.lat,
    lon: e.lon,
    weight: e.weight ?? 1,
    country: e.country,
    continent: e.continent,
    countries: e.countries ?? [],
    continents: e.continents ?? [],
  }));
  const seen = new Set<string>();
  for (const s of sites) {
    if (seen.has(s.name)) throw new Error(`edges: name ${s.name} appears twice`);
    seen.add(s.name);
  }
  for (const name of director.defaults)
    if (!seen.has(name)) throw new Error(`dns.director.default: no edge named ${name}`);
  return { origin, originLabels: origin.split("."), dotOrigin: `.${origin}`, ttl: dns.ttl, negativeTtl, soa, nodes, names, director, sites };
}
