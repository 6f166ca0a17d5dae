/** The JSON DNS API (application/dns-json, Google/Cloudflare convention): query building and answer formatting. Pure. */
import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import { formatIp, maskIp, parseCidr } from "../net/ip.ts";
import { ECS_CODE } from "./ecs.ts";

const TYPES: Record<string, number> = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, HINFO: 13, MX: 15, TXT: 16, AAAA: 28, SRV: 33, DS: 43, DNSKEY: 48, HTTPS: 65, SVCB: 64, CAA: 257, ANY: 255,
};

/** The wire query for ?name=&type=[&edns_client_subnet=]; a string says why it is a bad request. */
export function jsonQuery(name: string | undefined, type: string | undefined, subnet: string | undefined): Uint8Array | string {
  if (!name || name.length > 253 || !/^[\x21-\x7e]+$/.test(name)) return "name missing or invalid";
  const clean = name.replace(/\.$/, "");
  if (clean.split(".").some((l) => l.length === 0 || l.length > 63) && clean !== "") return "name has an empty or long label";
  const t = type ?? "A";
  const qtype = /^\d+$/.test(t) ? Number(t) : TYPES[t.toUpperCase()];
  if (qtype === undefined || qtype < 1 || qtype > 65535) return "unknown type";
  const additionals: unknown[] = [];
  if (subnet !== undefined) {
    const cidr = parseCidr(subnet);
    if (!cidr) return "edns_client_subnet must be an address/prefix";
    const n = Math.ceil(cidr.prefix / 8);
    const data = Buffer.alloc(4 + n);
    data.writeUInt16BE(cidr.bytes.length === 4 ? 1 : 2, 0);
    data[2] = cidr.prefix;
    Buffer.from(maskIp(cidr.bytes, cidr.prefix).subarray(0, n)).copy(data, 4);
    additionals.push({ name: ".", type: "OPT", udpPayloadSize: 4096, flags: 0, options: [{ code: ECS_CODE, data }] });
  } else additionals.push({ name: ".", type: "OPT", udpPayloadSize: 4096, flags: 0, options: [] });
  const wire = dnsPacket.encode({
    id: 0,
    type: "query",
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name: clean, type: (Object.keys(TYPES).find((k) => TYPES[k] === qtype) ?? `UNKNOWN_${qtype}`) as never, class: "IN" }],
    additionals: additionals as dnsPacket.Answer[],
  });
  return new Uint8Array(wire);
}

const RCODES: Record<string, number> = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };
const typeNum = (t: string | number) => (typeof t === "number" ? t : (TYPES[t] ?? (Number(/^UNKNOWN_(\d+)$/.exec(t)?.[1]) || 0)));
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
    Status: RCODES[(p as { rcode?: string }).rcode ?? "NOERROR"] ?? 2,
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

