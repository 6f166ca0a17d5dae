/** The JSON DNS API (application/dns-json, Google/Cloudflare convention): query building and answer formatting. Pure. */
import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import { formatIp, maskIp, parseCidr } from "../net/ip.ts";
import { rcodeCode, typeCode } from "./codes.ts";
import { ECS_CODE } from "./ecs.ts";
import { encodeName } from "./names.ts";

/** The wire query for ?name=&type=[&edns_client_subnet=]; a string says why it is a bad request. */
export function jsonQuery(name: string | undefined, type: string | undefined, subnet: string | undefined): Uint8Array | string {
  if (!name || name.length > 253 || !/^[\x21-\x7e]+$/.test(name)) return "name missing or invalid";
  const clean = name.replace(/\.$/, "");
  if (clean.split(".").some((l) => l.length === 0 || l.length > 63) && clean !== "") return "name has an empty or long label";
  const qtype = typeCode(type ?? "A") ?? (/^\d{1,5}$/.test(type ?? "") ? Number(type) : undefined);
  if (qtype === undefined || qtype < 1 || qtype > 65535) return "unknown type";
  let option = new Uint8Array(0);
  if (subnet !== undefined) {
    const cidr = parseCidr(subnet);
    if (!cidr) return "edns_client_subnet must be an address/prefix";
    const n = Math.ceil(cidr.prefix / 8);
    option = new Uint8Array(8 + n);
    option[1] = ECS_CODE;
    option[3] = 4 + n;
    option[5] = cidr.bytes.length === 4 ? 1 : 2;
    option[6] = cidr.prefix;
    option.set(maskIp(cidr.bytes, cidr.prefix).subarray(0, n), 8);
  }
  const qname = encodeName(clean);
  const out = new Uint8Array(12 + qname.length + 4 + 11 + option.length);
  out[2] = 0x01; // RD
  out[5] = 1; // QDCOUNT
  out[11] = 1; // ARCOUNT: the OPT
  out.set(qname, 12);
  let p = 12 + qname.length;
  out[p++] = qtype >> 8;
  out[p++] = qtype;
  out[p++] = 0;
  out[p++] = 1; // IN
  // OPT: root, TYPE 41, payload 4096, TTL 0, RDLENGTH, the ECS option.
  out.set([0, 0, 41, 0x10, 0, 0, 0, 0, 0, option.length >> 8, option.length], p);
  out.set(option, p + 11);
  return out;
}

const typeNum = (t: string | number) => (typeof t === "number" ? t : (typeCode(t) ?? (Number(/^UNKNOWN_(\d+)$/.exec(t)?.[1]) || 0)));
const fqdn = (n: string) => (n.endsWith(".") ? n : `${n}.`);

function dataText(r: dnsPacket.Answer): string {
  const d = (r as { data: unknown }).data as never;
  switch (r.type) {
    case "TXT":
      return (d as Buffer[]).map((b) => JSON.stringify(Buffer.from(b).toString("utf8"))).join(" ");
    case "CNAME":
    case "NS":
    case "PTR":
      return fqdn(d as string);
    case "SOA": {
      const s = d as dnsPacket.SoaData;
      return `${fqdn(s.mname)} ${fqdn(s.rname)} ${s.serial} ${s.refresh} ${s.retry} ${s.expire} ${s.minimum}`;
    }
    case "MX":
      return `${(d as { preference: number }).preference} ${fqdn((d as { exchange: string }).exchange)}`;
    case "SRV": {
      const s = d as { priority: number; weight: number; port: number; target: string };
      return `${s.priority} ${s.weight} ${s.port} ${fqdn(s.target)}`;
    }
    case "CAA": {
      const c = d as { flags: number; tag: string; value: string };
      return `${c.flags} ${c.tag} ${JSON.stringify(c.value)}`;
    }
    case "HINFO":
      return `${JSON.stringify((d as { cpu: string }).cpu)} ${JSON.stringify((d as { os: string }).os)}`;
    default:
      return String(d);
  }
}

/** The JSON object for a wire answer. */
export function jsonAnswer(wire: Uint8Array): Record<string, unknown> {
  const p = dnsPacket.decode(Buffer.from(wire));
  const rr = (r: dnsPacket.Answer) => ({ name: fqdn(r.name), type: typeNum(r.type), TTL: (r as { ttl?: number }).ttl ?? 0, data: dataText(r) });
  const out: Record<string, unknown> = {
    Status: rcodeCode((p as { rcode?: string }).rcode ?? "NOERROR") ?? 2,
    TC: !!p.flag_tc,
    RD: !!p.flag_rd,
    RA: false,
    AD: false,
    CD: false,
    Question: (p.questions ?? []).map((q) => ({ name: fqdn(q.name), type: typeNum(q.type) })),
  };
  const answers = (p.answers ?? []).map(rr);
  if (answers.length) out.Answer = answers;
  const auth = (p.authorities ?? []).map(rr);
  if (auth.length) out.Authority = auth;
  const opt = (p.additionals ?? []).find((a) => a.type === "OPT") as { options?: { code: number; data: Buffer }[] } | undefined;
  const ecs = opt?.options?.find((o) => o.code === ECS_CODE);
  if (ecs) {
    const d = ecs.data;
    const fam = d.readUInt16BE(0);
    const addr = Buffer.alloc(fam === 1 ? 4 : 16);
    d.subarray(4).copy(addr);
    out.edns_client_subnet = `${formatIp(new Uint8Array(addr))}/${d[2]}/${d[3]}`;
  }
  return out;
}

