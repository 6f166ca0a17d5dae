/**
 * Live reload of a real DNS node with `--workers 2` (issue 12): SIGHUP with a changed TTL answers the new TTL from
 * both processes with no query lost and the same PID; a broken file keeps the running configuration and says why;
 * `POST /admin/reload` does the same with the token; a GeoIP file replaced on disk is picked up on its own after a
 * validation (not judged by its size: a smaller edition is taken), and a damaged one is refused.
 */
import { createSocket } from "node:dgram";
import { copyFileSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import * as dnsPacket from "dns-packet";
import { afterAll, beforeAll, expect, it } from "vitest";
import { metadataMarker } from "../../src/geoip/open.ts";
import { TEST_ZONE_TOML } from "../support/dns-zone.ts";
import { pollUntil } from "../support/dns-cdn.ts";
import { fromWorker, run, startDnsNode, type DnsNode } from "../support/dns-process.ts";

const TOKEN = "reload-admin-token-0123456789";
const fixtures = resolve(import.meta.dirname, "../fixtures");
const config = (ttl: number) => `${TEST_ZONE_TOML.replace("ttl = 30", `ttl = ${ttl}`)}
[geoip]
city = "city.mmdb"
watch_interval_ms = 200

[dns.rrl]
rate = 0

[admin]
token = "${TOKEN}"
`;
let node: DnsNode;
beforeAll(async () => {
  node = await startDnsNode({ toml: config(30), workers: 2, files: { "city.mmdb": readFileSync(join(fixtures, "GeoLite2-City-Test.mmdb")) } });
});
afterAll(async () => {
  if (node && node.child.exitCode === null) {
    process.kill(node.child.pid!, "SIGCONT");
    await node.stop();
  }
});

const dig = (...args: string[]) => run("dig", ["@127.0.0.1", "-p", String(node.dnsPort), "+time=2", "+tries=1", ...args]);
const ttlOf = (out: string) => Number(/^director\.geo\.example\.org\.\s+(\d+)\s+IN\s+A\s/m.exec(out)?.[1]);

/** Sends a UDP query every 10 ms for `ms`; resolves with how many were sent and answered (1 s to answer each). */
async function prober(ms: number): Promise<{ sent: number; answered: number }> {
  const sock = createSocket("udp4");
  const pending = new Set<number>();
  let answered = 0;
  sock.on("message", (m) => {
    const id = dnsPacket.decode(m).id!;
    if (pending.delete(id)) answered++;
  });
  let sent = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const id = ++sent;
    pending.add(id);
    sock.send(dnsPacket.encode({ type: "query", id, questions: [{ name: "director.geo.example.org", type: "A" }] }), node.dnsPort, "127.0.0.1");
    await new Promise((r) => setTimeout(r, 10));
  }
  await pollUntil(async () => (pending.size === 0 ? true : undefined), 1000);
  sock.close();
  return { sent, answered };
}


it("SIGHUP: the new TTL from every process, no query lost, same PID", async () => {
  expect(ttlOf((await dig("director.geo.example.org", "A")).out)).toBe(30);
  const pid = node.child.pid;
  writeFileSync(node.config, config(17));
  const probing = prober(1500);
  await new Promise((r) => setTimeout(r, 400));
  process.kill(node.child.pid!, "SIGHUP");
  const { sent, answered } = await probing;
  expect(sent).toBeGreaterThan(50);
  expect(answered).toBe(sent);
  expect(node.child.exitCode).toBeNull();
  expect(node.child.pid).toBe(pid);
  expect(node.stdout()).toMatch(/^dns reload \(SIGHUP\): zone geo\.example\.org/m);
  expect(ttlOf((await dig("+tcp", "director.geo.example.org", "A")).out)).toBe(17);
  expect(ttlOf(await fromWorker(node, dig, (out) => ttlOf(out) === 17, "director.geo.example.org", "A"))).toBe(17);
});

it("SIGHUP with a broken file keeps the running configuration and logs why", async () => {
  writeFileSync(node.config, config(5).replace("answers = 2", "answers = 99"));
  process.kill(node.child.pid!, "SIGHUP");
  const logged = await pollUntil(async () => (/reload \(SIGHUP\) refused/.test(node.stderr()) ? node.stderr() : undefined), 5000);
  expect(logged!.value).toMatch(/dns: reload \(SIGHUP\) refused, the running configuration stays: .*dns\.director\.answers/);
  expect(ttlOf((await dig("director.geo.example.org", "A")).out)).toBe(17);
  expect(node.child.exitCode).toBeNull();
});

it("POST /admin/reload: reloads with the token, refuses a broken file with the reason", async () => {
  const call = (token?: string) =>
    fetch(`http://127.0.0.1:${node.httpPort}/admin/reload`, { method: "POST", headers: token ? { authorization: `Bearer ${token}` } : {} });
  expect((await call()).status).toBe(401);
  const broken = await call(TOKEN);
  expect(broken.status).toBe(422);
  expect(((await broken.json()) as { error: string }).error).toMatch(/dns\.director\.answers/);
  writeFileSync(node.config, config(23));
  const ok = await call(TOKEN);
  expect([ok.status, await ok.json()]).toEqual([200, { ok: true }]);
  expect(ttlOf((await dig("director.geo.example.org", "A")).out)).toBe(23);
});

it("picks up a replaced GeoIP file on its own, and refuses a damaged one", async () => {
  const city = join(node.dir, "city.mmdb");
  const txt = async () => /TXT\s+"([^"]*)"/.exec((await dig("+subnet=2.2.3.1/32", "director.geo.example.org", "TXT")).out)?.[1] ?? "";
  expect(await txt()).toContain("city unknown"); // GeoLite2-City-Test does not know 2.2.3.0/24
  // The operator's daily update: a new file moved into place.
  copyFileSync(join(fixtures, "GeoIP2-City-Test.mmdb"), `${city}.new`);
  renameSync(`${city}.new`, city);
  const updated = await pollUntil(async () => ((await txt()).includes("city boxford") ? true : undefined), 10_000, 200);
  expect(updated).toBeDefined();
  expect(node.stdout()).toMatch(/dns reload \(GeoIP file .*city\.mmdb changed\).*GeoIP reloaded/);
  // A damaged copy (garbage of the same size) is refused: the answers stay.
  writeFileSync(city, Buffer.alloc(readFileSync(city).length, 7));
  const refused = await pollUntil(async () => (/reload \(GeoIP file .* refused/.test(node.stderr()) ? true : undefined), 10_000, 200);
  expect(refused).toBeDefined();
  expect(await txt()).toContain("city boxford");
  // Judged by validation, not size: a valid file three times as big, then a valid one a third of that.
  const reloads = () => (node.stdout().match(/GeoIP reloaded/g) ?? []).length;
  const big = readFileSync(join(fixtures, "GeoIP2-City-Test.mmdb"));
  const at = metadataMarker(big);
  const before = reloads();
  writeFileSync(`${city}.new`, Buffer.concat([big.subarray(0, at), Buffer.alloc(big.length * 2), big.subarray(at)]));
  renameSync(`${city}.new`, city);
  expect(await pollUntil(async () => (reloads() > before ? true : undefined), 10_000, 200)).toBeDefined();
  copyFileSync(join(fixtures, "GeoLite2-City-Test.mmdb"), `${city}.new`);
  renameSync(`${city}.new`, city);
  const smaller = await pollUntil(async () => ((await txt()).includes("city unknown") ? true : undefined), 10_000, 200);
  expect(smaller, node.stderr()).toBeDefined();
});
