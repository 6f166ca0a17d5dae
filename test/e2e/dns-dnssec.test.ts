/**
 * DNSSEC on a real DNS node (issue 12): keys made by `npm run dns -- keygen` (a KSK and a ZSK), the DS printed by
 * `npm run dns -- ds` (the same as ldns-key2ds computes), and `delv` with that DS as its only trust anchor validating
 * the director's A, AAAA and TXT, a challenge TXT, an NXDOMAIN and a NODATA — answered by both processes of a
 * `--workers 2` node; a wrong anchor fails. `kdig +dnssec` (UDP and DoT) and `dig +https +dnssec` get signed answers.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { run, startDnsNode, ZONE_TOML, type DnsNode } from "../support/dns-process.ts";

const TOKEN = "dnssec-admin-token-0123456789";
const repo = resolve(import.meta.dirname, "../..");
const keysDir = mkdtempSync(join(tmpdir(), "parrot-dnssec-"));
const dnsCli = (...args: string[]) => run(process.execPath, [join(repo, "scripts/dns.ts"), ...args]);
let node: DnsNode;
let anchors: string;

beforeAll(async () => {
  for (const k of ["ksk", "zsk"]) expect((await dnsCli("keygen", "--out", join(keysDir, `${k}.pem`))).code).toBe(0);
  node = await startDnsNode({
    tls: true,
    workers: 2,
    toml: `${ZONE_TOML.replace("records = [", `records = [ { name = "@", type = "CAA", value = '0 issue "letsencrypt.org"' },
            { name = "*.cdn", type = "A", value = "192.0.2.80" }, { name = "*.alias", type = "CNAME", value = "director" },`)}
[dns.dnssec]
keys = [ { file = "ksk.pem", role = "ksk" }, { file = "zsk.pem", role = "zsk" } ]

[admin]
token = "${TOKEN}"
`,
    files: { "ksk.pem": readFileSync(join(keysDir, "ksk.pem")), "zsk.pem": readFileSync(join(keysDir, "zsk.pem")) },
  });
  const printed = await dnsCli("ds", "--config", node.config, "--anchors");
  expect(printed.code).toBe(0);
  anchors = join(node.dir, "anchors.conf");
  writeFileSync(anchors, printed.out);
});
afterAll(async () => {
  await node?.stop();
  rmSync(keysDir, { recursive: true, force: true });
});

const delv = (anchorFile: string, ...args: string[]) =>
  run("delv", ["@127.0.0.1", "-p", String(node.dnsPort), "-a", anchorFile, "+root=geo.example.org", ...args]);

it("prints the DS for the parent zone as ldns-key2ds computes it", async () => {
  const printed = (await dnsCli("ds", "--config", node.config)).out;
  const dnskey = /^(geo\.example\.org\. \d+ IN DNSKEY 257 3 13 \S+)/m.exec(printed)![1]!;
  writeFileSync(join(node.dir, "ksk.key"), `${dnskey}\n`);
  const ldns = await run("ldns-key2ds", ["-n", "-2", join(node.dir, "ksk.key")]);
  const ours = /^geo\.example\.org\. IN DS (\d+ 13 2 [0-9A-F]+)/m.exec(printed)![1]!;
  expect(ldns.out.replace(/\s+/g, " ").trim().toUpperCase()).toBe(`GEO.EXAMPLE.ORG. 3600 IN DS ${ours}`);
  expect(printed).toMatch(/IN DNSKEY 256 3 13 .* ZSK key tag \d+/);
});

it("delv validates the director's A, AAAA and TXT with the DS as trust anchor, from every process", async () => {
  for (let i = 0; i < 3; i++)
    for (const type of ["A", "AAAA", "TXT"]) {
      const r = await delv(anchors, "director.geo.example.org", type);
      expect(r.out, `${type}: ${r.out}`).toMatch(/^; fully validated$/m);
      expect(r.out).toMatch(new RegExp(`^director\\.geo\\.example\\.org\\.\\s+30\\s+IN\\s+${type}\\s`, "m"));
      expect(r.out).toMatch(new RegExp(`IN\\s+RRSIG\\s+${type} 13 4 30 `));
    }
  // The worker process alone (the primary stopped) signs with the same keys: asked from a client port the kernel
  // hands to the worker's socket (SO_REUSEPORT picks a process by the client's address and port).
  process.kill(node.child.pid!, "SIGSTOP");
  try {
    let port = 0;
    for (let i = 0; i < 32 && !port; i++) {
      const p = 20000 + Math.floor(Math.random() * 40000);
      const dig = await run("dig", ["-b", `127.0.0.1#${p}`, "+time=2", "+tries=1", "@127.0.0.1", "-p", String(node.dnsPort), "director.geo.example.org", "A"]);
      if (/status: NOERROR/.test(dig.out)) port = p;
    }
    expect(port, "a client port the worker answers").toBeGreaterThan(0);
    expect((await delv(anchors, "-b", `127.0.0.1#${port}`, "director.geo.example.org", "A")).out).toMatch(/^; fully validated$/m);
  } finally {
    process.kill(node.child.pid!, "SIGCONT");
  }
});

it("delv validates an NXDOMAIN and a NODATA (minimally covering NSEC)", async () => {
  const nx = await delv(anchors, "nothing.geo.example.org", "A");
  expect(nx.out).toMatch(/^; negative response, fully validated$/m);
  expect(nx.out).toContain(";-$NXDOMAIN");
  expect(nx.out).toMatch(/NSEC nothing\\000\.geo\.example\.org\. RRSIG NSEC/);
  const nodata = await delv(anchors, "ns1.geo.example.org", "AAAA");
  expect(nodata.out).toMatch(/^; negative response, fully validated$/m);
  expect(nodata.out).toContain(";-$NXRRSET");
  const ent = await delv(anchors, "deep.geo.example.org", "TXT"); // an empty non-terminal
  expect(ent.out).toMatch(/^; negative response, fully validated$/m);
});

it("answers CAA (type 257) and NODATA for an unknown type above 255, both validated by delv", async () => {
  const dig = (...args: string[]) => run("dig", ["@127.0.0.1", "-p", String(node.dnsPort), "+time=5", "+tries=1", ...args]);
  const caa = await dig("geo.example.org", "CAA");
  expect(caa.out).toMatch(/status: NOERROR/);
  expect(caa.out).toMatch(/^geo\.example\.org\.\s+30\s+IN\s+CAA\s+0 issue "letsencrypt\.org"$/m);
  const unknown = await dig("ns1.geo.example.org", "TYPE1234");
  expect(unknown.out).toMatch(/status: NOERROR/);
  expect(unknown.out).toMatch(/ANSWER: 0, AUTHORITY: 1,/);
  expect(unknown.out).toMatch(/^geo\.example\.org\.\s+\d+\s+IN\s+SOA\s/m);
  const signed = await delv(anchors, "geo.example.org", "CAA");
  expect(signed.out).toMatch(/^; fully validated$/m);
  expect(signed.out).toMatch(/IN\s+RRSIG\s+CAA 13 3 30 /);
  for (const type of ["TYPE1234", "URI"]) {
    const denied = await delv(anchors, "ns1.geo.example.org", type);
    expect(denied.out, type).toMatch(/^; negative response, fully validated$/m);
    expect(denied.out).toContain(";-$NXRRSET");
  }
});

it("delv validates the answer to a question for NSEC", async () => {
  for (const name of ["ns1.geo.example.org", "www.geo.example.org", "geo.example.org"]) {
    const r = await delv(anchors, name, "NSEC");
    expect(r.out, `${name}: ${r.out}`).toMatch(/^; fully validated$/m);
    expect(r.out).toMatch(new RegExp(`^${name.replace(/\./g, "\\.")}\\.\\s+30\\s+IN\\s+NSEC\\s+\\\\000\\.${name.replace(/\./g, "\\.")}\\.`, "m"));
  }
});

it("delv validates an ACME challenge TXT published through the admin call", async () => {
  const res = await fetch(`http://127.0.0.1:${node.httpPort}/admin/acme-challenge`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ name: "_acme-challenge.www.geo.example.org", value: "signed-token" }),
  });
  expect(res.status).toBe(200);
  const r = await delv(anchors, "_acme-challenge.www.geo.example.org", "TXT");
  expect(r.out).toMatch(/^; fully validated$/m);
  expect(r.out).toContain('"signed-token"');
});

it("delv validates answers synthesized from wildcards, their NODATA, and the names around them", async () => {
  const a = await delv(anchors, "any.thing.cdn.geo.example.org", "A");
  expect(a.out, a.out).toMatch(/^; fully validated$/m);
  expect(a.out).toMatch(/^any\.thing\.cdn\.geo\.example\.org\.\s+30\s+IN\s+A\s+192\.0\.2\.80$/m);
  expect(a.out).toMatch(/IN\s+RRSIG\s+A 13 4 30 /); // labels: *.cdn.geo.example.org less the "*"
  const cname = await delv(anchors, "x.alias.geo.example.org", "A");
  expect(cname.out, cname.out).toMatch(/^; fully validated$/m);
  expect(cname.out).toMatch(/^x\.alias\.geo\.example\.org\.\s+30\s+IN\s+CNAME\s+director\.geo\.example\.org\.$/m);
  expect(cname.out).toMatch(/^director\.geo\.example\.org\.\s+30\s+IN\s+A\s/m);
  for (const [name, type] of [["other.cdn.geo.example.org", "AAAA"], ["cdn.geo.example.org", "A"], ["*.cdn.geo.example.org", "TXT"]]) {
    const r = await delv(anchors, name!, type!);
    expect(r.out, `${name} ${type}: ${r.out}`).toMatch(/^; negative response, fully validated$/m);
    expect(r.out).toContain(";-$NXRRSET");
  }
  const nsec = await delv(anchors, "any.cdn.geo.example.org", "NSEC"); // the wildcard's NSEC, synthesized
  expect(nsec.out, nsec.out).toMatch(/^; fully validated$/m);
  expect(nsec.out).toMatch(/^any\.cdn\.geo\.example\.org\.\s+30\s+IN\s+NSEC\s+\\000\.any\.cdn\.geo\.example\.org\. A RRSIG NSEC$/m);
  const literal = await delv(anchors, "*.cdn.geo.example.org", "A");
  expect(literal.out, literal.out).toMatch(/^; fully validated$/m);
  const none = await delv(anchors, "x.ns1.geo.example.org", "A"); // below a name without a wildcard
  expect(none.out, none.out).toMatch(/^; negative response, fully validated$/m);
  expect(none.out).toContain(";-$NXDOMAIN");
  // Plain dig (no DNSSEC) gets the synthesized answer too.
  const plain = await run("dig", ["@127.0.0.1", "-p", String(node.dnsPort), "+short", "Mixed.Case.CDN.geo.example.org", "A"]);
  expect(plain.out.trim()).toBe("192.0.2.80");
});

it("fails validation against another key's DS", async () => {
  const other = join(node.dir, "other.conf");
  writeFileSync(other, readFileSync(anchors, "utf8").replace(/static-ds \d+ 13 2 "[0-9A-F]+"/, 'static-ds 12345 13 2 "' + "AB".repeat(32) + '"'));
  const r = await delv(other, "director.geo.example.org", "A");
  expect(r.out).not.toMatch(/fully validated/);
  expect(r.out).toMatch(/resolution failed|no valid/);
});

it("kdig +dnssec over UDP and DoT, and dig +https +dnssec over DoH, get signed answers", async () => {
  const udp = await run("kdig", ["@127.0.0.1", "-p", String(node.dnsPort), "+dnssec", "director.geo.example.org", "A"]);
  expect(udp.out).toMatch(/EDNS PSEUDOSECTION:\n;; Version: 0; flags: do;/);
  expect(udp.out).toMatch(/director\.geo\.example\.org\.\s+30\s+IN\s+RRSIG\s+A 13 4 30/);
  const dot = await run("kdig", ["@127.0.0.1", "-p", String(node.dotPort), "+tls", `+tls-ca=${node.cert}`, "+tls-hostname=localhost", "+dnssec", "geo.example.org", "DNSKEY"]);
  expect(dot.out).toMatch(/IN\s+DNSKEY\s+257 3 13/);
  expect(dot.out).toMatch(/IN\s+RRSIG\s+DNSKEY 13 3 3600/);
  const doh = await run("dig", ["+https", `+tls-ca=${node.cert}`, "+tls-hostname=localhost", "@127.0.0.1", "-p", String(node.tlsPort), "+dnssec", "director.geo.example.org", "TXT"]);
  expect(doh.out).toContain("(HTTPS)");
  expect(doh.out).toMatch(/IN\s+RRSIG\s+TXT 13 4 30/);
  // Without DO: no signatures.
  expect((await run("dig", ["@127.0.0.1", "-p", String(node.dnsPort), "director.geo.example.org", "A"])).out).not.toContain("RRSIG");
});
