/** Real DNS clients (dig, kdig, curl, dnspython) against a running `node scripts/dns.ts`. */
import { createSocket } from "node:dgram";
import * as dnsPacket from "dns-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run, startDnsNode, type DnsNode } from "../support/dns-process.ts";

let node: DnsNode;
beforeAll(async () => {
  node = await startDnsNode({ tls: true });
});
afterAll(async () => {
  await node?.stop();
});

const dig = (...args: string[]) => run("dig", ["@127.0.0.1", "-p", String(node.dnsPort), "+time=5", "+tries=1", ...args]);
const txt = (out: string) => /TXT\s+"([^"]*)"/.exec(out)?.[1];
const addresses = (out: string) => [...out.matchAll(/^\S+\s+\d+\s+IN\s+(?:A|AAAA)\s+(\S+)$/gm)].map((m) => m[1]);
const status = (out: string) => /status: (\w+)/.exec(out)?.[1];

describe("classic DNS with dig", () => {
  it.each([
    ["81.2.69.142/32", "ip 81.2.69.142 v4 city london country gb gbr state eu region eng name unknown as unknown"],
    ["89.160.20.112/28", "ip 89.160.20.112 v4 city linköping country se swe state eu region e name bredband2 ab as as29518"],
    ["175.16.199.0/24", "ip 175.16.199.0 v4 city changchun country cn chn state as region 22 name unknown as unknown"],
    ["216.160.83.56/29", "ip 216.160.83.56 v4 city milton country us usa state na region wa name unknown as as209"],
  ])("TXT for ECS %s over UDP and TCP", async (subnet, expected) => {
    for (const transport of ["+notcp", "+tcp"]) {
      const r = await dig(transport, `+subnet=${subnet}`, "director.geo.example.org", "TXT");
      // dig prints non-ASCII bytes as \DDD escapes.
      expect(txt(r.out)?.replace(/\\(\d{3})\\(\d{3})/g, (_, a, b) => Buffer.from([+a, +b]).toString())).toBe(expected);
      expect(r.out).toMatch(/flags: qr aa rd;/);
    }
  });

  it("answers the nearest edges first and reports the GeoIP block as ECS scope", async () => {
    const lon = await dig("+subnet=81.2.69.142/32", "director.geo.example.org", "A");
    expect(addresses(lon.out)).toEqual(["192.0.2.21", "192.0.2.22"]);
    expect(lon.out).toContain("CLIENT-SUBNET: 81.2.69.142/32/31");
    const milton = await dig("+tcp", "+subnet=216.160.83.56/32", "director.geo.example.org", "AAAA");
    expect(addresses(milton.out)).toEqual(["2001:db8:22::1", "2001:db8:21::1"]);
    const cn = await dig("+subnet=175.16.199.0/24", "director.geo.example.org", "A");
    expect(addresses(cn.out)[0]).toBe("192.0.2.23");
    const untailored = await dig("+subnet=81.2.69.142/32", "ns1.geo.example.org", "A");
    expect(untailored.out).toContain("CLIENT-SUBNET: 81.2.69.142/32/0");
    const zero = await dig("+subnet=0.0.0.0/0", "director.geo.example.org", "A");
    expect(addresses(zero.out)[0]).toBe("192.0.2.22"); // the default set
    expect(zero.out).toContain("CLIENT-SUBNET: 0.0.0.0/0/0");
  });

  it("locates the UDP peer without ECS (loopback is not in the database: default set, unknown fields)", async () => {
    const r = await dig("+noedns", "director.geo.example.org", "TXT");
    expect(txt(r.out)).toBe("ip 127.0.0.1 v4 city unknown country unknown unknown state unknown region unknown name unknown as unknown");
    expect((await dig("+short", "director.geo.example.org", "A")).out.split("\n")[0]).toBe("192.0.2.22");
  });

  it("keeps the qname's case in question and answer", async () => {
    const r = await dig("DiReCtOr.GeO.eXaMpLe.OrG", "A");
    expect(r.out).toMatch(/^;DiReCtOr\.GeO\.eXaMpLe\.OrG\.\s+IN\s+A$/m);
    expect(r.out).toMatch(/^DiReCtOr\.GeO\.eXaMpLe\.OrG\.\s+30\s+IN\s+A\s/m);
  });

  it("tells NXDOMAIN, NODATA and REFUSED apart", async () => {
    const nx = await dig("nothing.geo.example.org", "A");
    expect(status(nx.out)).toBe("NXDOMAIN");
    expect(nx.out).toMatch(/AUTHORITY SECTION:\ngeo\.example\.org\.\s+30\s+IN\s+SOA\s+ns1\.geo\.example\.org\. hostmaster\.example\.org\./);
    const nodata = await dig("ns1.geo.example.org", "AAAA");
    expect(status(nodata.out)).toBe("NOERROR");
    expect(nodata.out).toContain("ANSWER: 0, AUTHORITY: 1");
    const refused = await dig("example.com", "A");
    expect(status(refused.out)).toBe("REFUSED");
    expect(refused.out).not.toMatch(/flags: qr aa/);
  });

  it("sets TC=1 for a large answer without EDNS and dig gets it over TCP", async () => {
    const ignore = await dig("+noedns", "+ignore", "big.geo.example.org", "TXT");
    expect(ignore.out).toMatch(/flags:[^;]*\btc\b/);
    expect(ignore.out).toContain("ANSWER: 0,");
    const retried = await dig("+noedns", "big.geo.example.org", "TXT");
    expect(retried.out).toContain("Truncated, retrying in TCP mode");
    expect(retried.out).toContain(`"${"b".repeat(255)}" "${"b".repeat(255)}" "${"b".repeat(190)}"`);
    const edns = await dig("+bufsize=1232", "big.geo.example.org", "TXT");
    expect(edns.out).not.toContain("Truncated");
    expect(edns.out).toContain("(UDP)");
  });

  it("answers FORMERR to a query with two questions, and follows the CNAME", async () => {
    const q = Buffer.from(dnsPacket.encode({ type: "query", id: 4242, questions: [{ name: "director.geo.example.org", type: "A" }, { name: "x.geo.example.org", type: "A" }] }));
    const sock = createSocket("udp4");
    const reply = await new Promise<Buffer>((ok) => {
      sock.once("message", ok);
      sock.send(q, node.dnsPort, "127.0.0.1");
    });
    sock.close();
    const p = dnsPacket.decode(reply) as dnsPacket.DecodedPacket & { rcode: string };
    expect([p.id, p.rcode]).toEqual([4242, "FORMERR"]);
    const www = await dig("+subnet=89.160.20.112/28", "www.geo.example.org", "A");
    expect(www.out).toMatch(/www\.geo\.example\.org\.\s+30\s+IN\s+CNAME\s+director\.geo\.example\.org\./);
    expect(addresses(www.out)[0]).toBe("192.0.2.21");
  });
});

describe("DNS over TLS (RFC 7858) with real clients", () => {
  it("kdig +tls and dig +tls get the director's answers; an untrusted certificate gets none", async () => {
    const k = await run("kdig", ["@127.0.0.1", "-p", String(node.dotPort), "+tls", `+tls-ca=${node.cert}`, "+tls-hostname=localhost", "+subnet=216.160.83.56/32", "director.geo.example.org", "TXT"]);
    expect(k.out).toContain("city milton country us usa state na region wa name unknown as as209");
    expect(k.out).toMatch(/TLS session \(TLS1\.3\)/);
    const d = await run("dig", ["+tls", `+tls-ca=${node.cert}`, "+tls-hostname=localhost", "@127.0.0.1", "-p", String(node.dotPort), "+subnet=81.2.69.142/32", "director.geo.example.org", "A", "nothing.geo.example.org", "A"]);
    expect(d.out).toContain("(TLS)");
    expect(addresses(d.out)).toEqual(["192.0.2.21", "192.0.2.22"]);
    expect(d.out).toContain("status: NXDOMAIN");
    // A certificate the client does not trust: no answer.
    const untrusted = await run("kdig", ["@127.0.0.1", "-p", String(node.dotPort), "+tls-ca", "+tls-hostname=localhost", "director.geo.example.org", "A"]);
    expect(untrusted.out).not.toMatch(/ANSWER SECTION/);
  });
});

describe("DNS over HTTPS with real clients", () => {
  it("dig +https (HTTP/2 over TLS)", async () => {
    const r = await run("dig", ["+https", `+tls-ca=${node.cert}`, "+tls-hostname=localhost", "@127.0.0.1", "-p", String(node.tlsPort), "+subnet=89.160.20.112/28", "director.geo.example.org", "TXT"]);
    expect(r.out).toContain("(HTTPS)");
    expect(txt(r.out)).toContain("country se swe state eu region e name bredband2 ab as as29518");
    const get = await run("dig", ["+https-get", `+tls-ca=${node.cert}`, "+tls-hostname=localhost", "@127.0.0.1", "-p", String(node.tlsPort), "nothing.geo.example.org", "A"]);
    expect(status(get.out)).toBe("NXDOMAIN");
  });

  it("kdig +https", async () => {
    const r = await run("kdig", ["@127.0.0.1", "-p", String(node.tlsPort), "+https", `+tls-ca=${node.cert}`, "+tls-hostname=localhost", "+subnet=216.160.83.56/32", "director.geo.example.org", "TXT"]);
    expect(r.out).toContain("city milton country us usa state na region wa name unknown as as209");
  });

  it("curl --doh-url resolves a zone name and fetches through it", async () => {
    const r = await run("curl", ["-sS", "--cacert", node.cert!, "--doh-url", `https://localhost:${node.tlsPort}/dns-query`,
      `http://local.geo.example.org:${node.httpPort}/resolve?name=local.geo.example.org`]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).Answer[0]).toEqual({ name: "local.geo.example.org.", type: 1, TTL: 30, data: "127.0.0.1" });
  });

  it("dnspython over plain-HTTP DoH", async () => {
    const script = [
      "import sys, dns.message, dns.query, dns.edns",
      "q = dns.message.make_query('director.geo.example.org', 'TXT', use_edns=0, options=[dns.edns.ECSOption('175.16.199.0', 24)])",
      "r = dns.query.https(q, sys.argv[1], timeout=10)",
      "print(r.rcode(), r.answer[0].to_text(), r.options[0].to_text())",
    ].join("\n");
    const r = await run("/usr/bin/python3", ["-c", script, `http://127.0.0.1:${node.httpPort}/dns-query`]);
    expect(r.out).toContain("city changchun country cn chn state as region 22");
    expect(r.out).toMatch(/^0 /);
    expect(r.out).toMatch(/ECS 175\.16\.199\.0\/24 scope\/\d+/);
  });

  it("plain-HTTP errors: 405, 415, 400 from curl", async () => {
    const code = async (...args: string[]) =>
      (await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", ...args, `http://127.0.0.1:${node.httpPort}/dns-query`])).out;
    expect(await code("-X", "PUT")).toBe("405");
    expect(await code("-X", "POST", "-H", "content-type: text/plain", "--data", "hello")).toBe("415");
    expect(await code("-G", "--data", "dns=not-base64!")).toBe("400");
  });
});
