/**
 * GeoIP data through the fleet (issue 22, item 4) over a real nats-server with per-node nkeys, real DNS nodes and an
 * edge box on bare workerd (`[geoip] fleet = true`): `fleet -- geoip push` checks the file, publishes it once (object
 * store, chunked) and every node swaps it in live (the director's TXT answer for a test address changes on each DNS
 * node, the trace's `loc=` on the edge); a corrupt or wrong-type file
 * is refused and changes nothing; rollback goes back to the version before (kept on disk); a node that starts after a
 * push answers with the current version from its first query, and with NATS down it keeps the last one it had (and
 * takes the next once NATS is back); a 64 MB database travels in chunks. The DNS node's key may write its own GeoIP status, never another's, the record,
 * a purge or a stream.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlClient } from "../../src/control/client.ts";
import { FleetKv } from "../../src/control/fleet-kv.ts";
import { connectOnce } from "../../src/control/nats.ts";
import { metadataMarker } from "../../src/geoip/open.ts";
import { ROOT } from "../../src/node/children.ts";
import { pollUntil } from "../support/dns-cdn.ts";
import { RRL_OFF_TOML, run, startDnsNode, type DnsNode } from "../support/dns-process.ts";
import { TEST_ZONE_TOML } from "../support/dns-zone.ts";
import { startKeyedNats, type KeyedNats } from "../support/nats.ts";
import { startControlCdn, type ControlCdn } from "../support/control-cdn.ts";

const fixtures = join(ROOT, "test/fixtures");
/** GeoLite2-City-Test does not know 2.2.3.0/24; GeoIP2-City-Test places it in Boxford. */
const LITE = join(fixtures, "GeoLite2-City-Test.mmdb");
const FULL = join(fixtures, "GeoIP2-City-Test.mmdb");
const NODES = ["ns1", "ns2", "ns3"];
let dir: string;
let nats: KeyedNats;
const nodes = new Map<string, DnsNode>();
let cdn: ControlCdn;

const nodeToml = (name: string) => `${TEST_ZONE_TOML}
[geoip]
city = "${LITE}"
fleet = true
${RRL_OFF_TOML}
[control]
servers = ["${nats.url}"]
nkey = "${nats.keyOf(name)}"
name = "${name}"
catch_up_timeout_ms = 60000
`;

function fleet(args: string[], timeoutMs = 60_000): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [join(ROOT, "scripts/fleet.ts"), ...args, "--config", join(dir, "operator.toml")], { timeout: timeoutMs, maxBuffer: 4 << 20 }, (err, stdout, stderr) =>
      resolve({ stdout, stderr, code: err ? (typeof err.code === "number" ? err.code : 1) : 0 }),
    ),
  );
}

const txt = async (node: DnsNode) =>
  /TXT\s+"([^"]*)"/.exec((await run("dig", ["@127.0.0.1", "-p", String(node.dnsPort), "+time=2", "+tries=1", "+subnet=2.2.3.1/32", "director.geo.example.org", "TXT"])).out)?.[1] ?? "";
/** The edge's trace for a client at the test address (its health names the fleet version it runs). */
const edgeLoc = async () => {
  const res = await fetch(new URL("/.well-known/cdn/trace", cdn.edgeUrl("eu-lon")), { headers: { "x-forwarded-for": "2.2.3.1" } });
  return /^loc=(.*)$/m.exec(await res.text())?.[1] ?? "";
};
/** Waits until every running node's answer for the test address names `city` (the edge's trace too); ms taken. */
async function everyNodeSays(city: string, ms = 20_000): Promise<number> {
  const t0 = performance.now();
  const edgeWants = city === "boxford" ? /Boxford/ : /^unknown$/;
  const edge = await pollUntil(async () => (edgeWants.test(await edgeLoc()) ? true : undefined), ms, 50);
  expect(edge, `edge: ${await edgeLoc()}\n${cdn.running("eu-lon")?.output()}`).toBeDefined();
  for (const [name, node] of nodes) {
    const got = await pollUntil(async () => ((await txt(node)).includes(`city ${city}`) ? true : undefined), ms, 50);
    expect(got, `${name}: ${await txt(node)}\n${node.stdout()}${node.stderr()}`).toBeDefined();
  }
  return performance.now() - t0;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "parrot-geoip-fleet-"));
  nats = await startKeyedNats(dir, [...NODES.flatMap((n) => ["--dns", n]), "--box", "eu-lon"]);
  writeFileSync(join(dir, "operator.toml"), `[control]\nservers = ["${nats.url}"]\nnkey = "${nats.keyOf("operator")}"\n`);
  for (const name of NODES.slice(0, 2)) nodes.set(name, await startDnsNode({ toml: nodeToml(name) }));
  cdn = await startControlCdn({
    edges: ["eu-lon"],
    ...nats.cdnAuth(["eu-lon"]),
    control: "catch_up_timeout_ms = 5000",
    geoip: "fleet = true",
    edge: () => 'trusted_proxies = ["127.0.0.0/8"]',
  });
}, 180_000);

afterAll(async () => {
  await cdn?.stop();
  for (const node of nodes.values()) await node.stop();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("GeoIP through the fleet", () => {
  it("a push swaps the City database on every DNS node; fleet status names each node's version", async () => {
    for (const node of nodes.values()) expect(await txt(node)).toContain("city unknown");
    expect(await edgeLoc()).toMatch(/Boxford/); // its own [geoip] city until the fleet has one
    const first = await fleet(["geoip", "push", LITE]);
    expect(first.stderr).toBe("");
    expect(first.stdout).toMatch(/^GeoIP version 1 stored \(GeoLite2-City, /m);
    await everyNodeSays("unknown");
    const t0 = performance.now();
    const push = await fleet(["geoip", "push", FULL]);
    expect(push.stderr).toBe("");
    expect(push.code).toBe(0);
    expect(push.stdout).toMatch(/^GeoIP version 2 stored \(GeoIP2-City, /m);
    expect(push.stdout).toMatch(/^before it: version 1$/m);
    for (const name of nodes.keys()) expect(push.stdout).toMatch(new RegExp(`^dns +${name}: ok +GeoIP version 2 `, "m"));
    expect(push.stdout).toMatch(/^edge eu-lon: ok +GeoIP version 2 /m);
    await everyNodeSays("boxford");
    console.log(`geoip push (small file) to boxford on ${nodes.size} nodes: ${Math.round(performance.now() - t0)} ms; ${/^GeoIP version 2 runs .*$/m.exec(push.stdout)?.[0]}`);
    const status = await fleet(["status"]);
    expect(status.stdout).toMatch(/^geoip: version 2 \(GeoIP2-City, /m);
    expect(status.stdout).toMatch(/^dns +ns1: ok +GeoIP version 2 /m);
    expect(status.stdout).toMatch(/^edge eu-lon: ok +GeoIP version 2 /m);
    expect(nodes.get("ns1")!.stdout()).toMatch(/dns reload \(fleet GeoIP version 2\).*GeoIP reloaded/);
  }, 90_000);

  it("a corrupt or wrong-type file is refused and changes nothing", async () => {
    const corrupt = join(dir, "corrupt.mmdb");
    const bytes = Buffer.from(readFileSync(FULL));
    bytes.fill(9, 100, 4000);
    writeFileSync(corrupt, bytes);
    const refused = await fleet(["geoip", "push", corrupt]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/corrupt\.mmdb refused, nothing published: lookups fail/);
    const asn = await fleet(["geoip", "push", join(fixtures, "GeoLite2-ASN-Test.mmdb")]);
    expect(asn.code).toBe(2);
    expect(asn.stderr).toMatch(/refused, nothing published: database_type is GeoLite2-ASN: a City database is needed/);
    const garbage = join(dir, "garbage.mmdb");
    writeFileSync(garbage, Buffer.alloc(5000, 7));
    expect((await fleet(["geoip", "push", garbage])).stderr).toMatch(/not a MaxMind DB/);
    expect((await fleet(["status"])).stdout).toMatch(/^geoip: version 2 /m);
    for (const node of nodes.values()) expect(await txt(node)).toContain("city boxford");
    expect(await edgeLoc()).toMatch(/Boxford/);
  }, 60_000);

  it("rollback goes back to the version before on every node", async () => {
    const back = await fleet(["geoip", "rollback"]);
    expect(back.stderr).toBe("");
    expect(back.stdout).toMatch(/^GeoIP rolled back: every node goes to version 1/m);
    await everyNodeSays("unknown");
    expect((await fleet(["geoip", "rollback"])).stderr).toMatch(/nothing to roll back: version 1 has no version before it/);
  }, 60_000);

  it("a 64 MB database travels in chunks and is swapped in on every node", async () => {
    const full = readFileSync(FULL);
    const at = metadataMarker(full);
    const big = join(dir, "big.mmdb");
    writeFileSync(big, Buffer.concat([full.subarray(0, at), Buffer.alloc(64 * 1024 * 1024 - full.length), full.subarray(at)]));
    const t0 = performance.now();
    const push = await fleet(["geoip", "push", big], 120_000);
    expect(push.stderr).toBe("");
    expect(push.code).toBe(0);
    const ms = performance.now() - t0 + (await everyNodeSays("boxford"));
    console.log(`geoip push 64 MB: ${Math.round(ms)} ms to every node (${push.stdout.split("\n").filter((l) => /stored|runs on/.test(l)).join(" | ")})`);
    for (const node of [...nodes.values(), { stdout: () => cdn.running("eu-lon")!.output(), stderr: () => "" }]) {
      const line = /GeoIP version 3 .* in service: fetched and checked in \d+ ms, swapped in \d+ ms/.exec(node.stdout() + node.stderr());
      expect(line, node.stdout() + node.stderr()).not.toBeNull();
      console.log(line![0]);
    }
  }, 180_000);

  it("a node that starts after a push answers with it from its first query; with NATS down it keeps the last one", async () => {
    const ns3 = await startDnsNode({ toml: nodeToml("ns3") });
    nodes.set("ns3", ns3);
    expect(ns3.stdout()).toMatch(/^dns geoip: fleet GeoIP version 3$/m);
    expect(await txt(ns3)).toContain("city boxford");
    await nats.stop();
    const exited = new Promise((r) => ns3.child.once("exit", r));
    ns3.child.kill("SIGTERM");
    await exited;
    const again = await startDnsNode({ dir: ns3.dir, toml: "" });
    nodes.set("ns3", again);
    expect(again.stdout()).toMatch(/^dns geoip: fleet GeoIP version 3, as last run here \(the fleet unreachable/m);
    expect(await txt(again)).toContain("city boxford");
    await nats.start();
  }, 90_000);

  it("after the outage every node, the one started without NATS too, takes the next version", async () => {
    const push = await fleet(["geoip", "push", LITE]);
    expect(push.stderr).toBe("");
    expect(push.stdout).toMatch(/^GeoIP version 4 runs on 4 of 4;/m);
    await everyNodeSays("unknown");
  }, 90_000);

  it("a DNS node's key writes its own GeoIP status, never another's, the record, a purge or a stream", async () => {
    const cfg = nats.controlAs("ns1");
    const nc = await connectOnce(cfg, "test as ns1");
    const operator = await connectOnce(nats.controlAs("operator"), "test operator");
    try {
      const kv = await FleetKv.open(nc, cfg);
      const opKv = await FleetKv.open(operator, nats.controlAs("operator"));
      const record = await pollUntil(async () => opKv.get("geoip"), 10_000);
      const own = (await opKv.get("geoip-at.dns.ns1"))!;
      expect(await kv.put("geoip-at.dns.ns1", own.value)).toBeGreaterThan(0);
      await expect(kv.put("geoip-at.dns.ns2", own.value)).rejects.toThrow();
      await expect(kv.put("geoip", record!.value.value)).rejects.toThrow();
      await expect(kv.put("rollout", "{}")).rejects.toThrow();
      const client = await ControlClient.open(nc, cfg, []);
      await expect(client.publishPurge({ all: true })).rejects.toThrow(/not stored/);
      await expect(client.manager.streams.purge("OBJ_parrot_geoip")).rejects.toThrow();
      expect((await opKv.get("geoip"))!.revision).toBe(record!.value.revision);
    } finally {
      await nc.close();
      await operator.close();
    }
  }, 60_000);
});
