/**
 * The ACME DNS-01 contract (issue 10) on a real DNS node with `--workers 2`: challenge TXT values published with an
 * authenticated call (curl) are answered by dig over UDP (by both processes), TCP, DoH and DoT, expire after their
 * ttl and go with DELETE.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { fromWorker, run, startDnsNode, type DnsNode } from "../support/dns-process.ts";

const TOKEN = "acme-admin-token-0123456789";
const NAME = "_acme-challenge.www.geo.example.org";
let node: DnsNode;
beforeAll(async () => {
  node = await startDnsNode({ tls: true, workers: 2, extraToml: `\n[admin]\ntoken = "${TOKEN}"\n` });
});
afterAll(async () => {
  if (node && node.child.exitCode === null) {
    process.kill(node.child.pid!, "SIGCONT");
    await node.stop();
  }
});

/** curl against the node's admin endpoint: status code and body. */
async function admin(method: string, body: unknown, token = TOKEN): Promise<{ code: string; body: string }> {
  const r = await run("curl", ["-sS", "-X", method, "-H", `authorization: Bearer ${token}`, "-H", "content-type: application/json",
    "--data", JSON.stringify(body), "-w", "\n%{http_code}", `http://127.0.0.1:${node.httpPort}/admin/acme-challenge`]);
  const lines = r.out.trimEnd().split("\n");
  return { code: lines.at(-1)!, body: lines.slice(0, -1).join("\n") };
}
const dig = (...args: string[]) => run("dig", ["@127.0.0.1", "-p", String(node.dnsPort), "+time=3", "+tries=1", ...args]);
const values = (out: string) => [...out.matchAll(/\sIN\s+TXT\s+"([^"]*)"/g)].map((m) => m[1]).sort();
const status = (out: string) => /status: (\w+)/.exec(out)?.[1];


it("publishes values answered on every transport and by every process, TTL at most 60", async () => {
  expect(await admin("POST", { name: NAME, value: "first-token", ttl: 600 })).toEqual({ code: "200", body: '{"ok":true}' });
  expect((await admin("POST", { name: NAME, value: "second-token" })).code).toBe("200");
  const udp = await dig(NAME, "TXT");
  expect(values(udp.out)).toEqual(["first-token", "second-token"]);
  expect(udp.out).toMatch(/_acme-challenge\.www\.geo\.example\.org\.\s+30\s+IN\s+TXT/); // [dns] ttl 30 < 60
  expect(values((await dig("+tcp", NAME, "TXT")).out)).toEqual(["first-token", "second-token"]);
  const doh = await run("dig", ["+https", `+tls-ca=${node.cert}`, "+tls-hostname=localhost", "@127.0.0.1", "-p", String(node.tlsPort), NAME, "TXT"]);
  expect(values(doh.out)).toEqual(["first-token", "second-token"]);
  const dot = await run("kdig", ["@127.0.0.1", "-p", String(node.dotPort), "+tls", `+tls-ca=${node.cert}`, "+tls-hostname=localhost", NAME, "TXT"]);
  expect(values(dot.out)).toEqual(["first-token", "second-token"]);
  // The worker process alone (the primary stopped): it got the values over IPC.
  const alone = await fromWorker(node, dig, (out) => values(out).length === 2, NAME, "TXT");
  expect(values(alone)).toEqual(["first-token", "second-token"]);
});

it("removes a value, then the name, on every process", async () => {
  expect((await admin("DELETE", { name: NAME, value: "first-token" })).code).toBe("200");
  expect(values((await dig(NAME, "TXT")).out)).toEqual(["second-token"]);
  expect((await admin("DELETE", { name: NAME })).code).toBe("200");
  expect(status(await fromWorker(node, dig, (out) => status(out) === "NXDOMAIN", NAME, "TXT"))).toBe("NXDOMAIN");
  expect(status((await dig("+tcp", NAME, "TXT")).out)).toBe("NXDOMAIN");
});

it("lets values expire after their ttl", async () => {
  expect((await admin("POST", { name: NAME, value: "short-lived", ttl: 1 })).code).toBe("200");
  expect(values((await dig(NAME, "TXT")).out)).toEqual(["short-lived"]);
  await new Promise((r) => setTimeout(r, 1500));
  for (let i = 0; i < 3; i++) expect(status((await dig(NAME, "TXT")).out)).toBe("NXDOMAIN");
});

it("refuses calls outside the contract with the reason", async () => {
  const outside = await admin("POST", { name: "_acme-challenge.www.example.com", value: "x" });
  expect(outside.code).toBe("400");
  expect(JSON.parse(outside.body)).toEqual({ ok: false, error: '"name" must be inside the zone geo.example.org' });
  expect((await admin("POST", { name: "www.geo.example.org", value: "x" })).code).toBe("400");
  expect((await admin("POST", { name: NAME, value: "x" }, "wrong-token-wrong-token")).code).toBe("401");
});
