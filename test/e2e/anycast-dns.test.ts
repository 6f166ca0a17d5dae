/**
 * Anycast at a DNS node, with real processes on loopback: `node scripts/dns.ts` with `[anycast] service = "dns"`
 * runs its announcer (a process of its own, checking the node with a real query over UDP) and BIRD; a second BIRD
 * is the router. Announced while the node answers (dig gets the SOA); withdrawn when it stops answering (stopped
 * with SIGSTOP: its event loop is gone, its announcer is not), announced again when it answers again; SIGTERM →
 * the route goes before the node stops answering.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { ANYCAST_PREFIX, anycastToml, waitFor, type AnycastTiming } from "../support/anycast.ts";
import { loopbackPair, startBirdRouter, type BirdRouter } from "../support/bird-router.ts";
import { freePort } from "../support/ports.ts";

const TIMING: AnycastTiming = { interval_ms: 500, timeout_ms: 400, down_after: 2, up_after: 3, withdraw_grace_ms: 1000 };
const DOWN_DEADLINE = TIMING.interval_ms * TIMING.down_after + TIMING.timeout_ms + 2000;
const ANNOUNCE_DEADLINE = 20_000;
const ZONE = "geo.example.org";

const { box: NODE, router: ROUTER_ADDRESS } = loopbackPair();
const measured: string[] = [];
let dir: string;
let router: BirdRouter;
let node: Running;
let dnsPort: number;

const announced = async () => ((await router.routes(ANYCAST_PREFIX)).length ? true : undefined);
const withdrawn = async () => ((await router.routes(ANYCAST_PREFIX)).length ? undefined : true);

/** `dig SOA` at the node (one try, 1 s): whether it answered with the zone's SOA. */
const digSoa = () =>
  new Promise<boolean>((resolve) =>
    execFile("dig", [`@${NODE}`, "-p", String(dnsPort), "+time=1", "+tries=1", "+norec", "+short", ZONE, "SOA"], { timeout: 3000 }, (err, out) =>
      resolve(!err && out.includes("hostmaster.example.org")),
    ),
  );

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "parrot-anycast-dns-"));
  const boxPort = await freePort(NODE);
  router = await startBirdRouter({ dir: join(dir, "router"), address: ROUTER_ADDRESS, boxAddress: NODE, boxPort, boxAs: 64512 });
  writeFileSync(
    join(dir, "cdn.toml"),
    `[dns]
zone = "${ZONE}"
nameservers = ["ns1.example.org"]
hostmaster = "hostmaster.example.org"
query_log = false

[geoip]
embedded = false
${anycastToml({ service: "dns", router, boxAddress: NODE, boxPort, runDir: join(dir, "run"), timing: TIMING })}`,
  );
  node = await startNodeScript("scripts/dns.ts", ["--config", join(dir, "cdn.toml"), "--host", NODE, "--port", "0", "--dns-port", "0"], /dns udp\+tcp \S+:(\d+)/, 60_000);
  dnsPort = Number(node.match[1]);
}, 90_000);

afterAll(async () => {
  if (measured.length) console.log(`anycast at a DNS node (interval ${TIMING.interval_ms} ms, down_after ${TIMING.down_after}, up_after ${TIMING.up_after}):\n  ${measured.join("\n  ")}`);
  if (node && node.proc.exitCode === null) process.kill(node.proc.pid!, "SIGCONT");
  await node?.stop();
  await router?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("anycast at a DNS node", () => {
  it("announces the prefix while the node answers queries over UDP", async () => {
    expect(await digSoa()).toBe(true);
    const got = await waitFor(announced, ANNOUNCE_DEADLINE);
    expect(got, `the router never learned ${ANYCAST_PREFIX}:\n${node.output()}`).toBeDefined();
    expect((await router.routes(ANYCAST_PREFIX))[0]!.attributes).toMatchObject({ as_path: "64512 64512", next_hop: NODE });
  });

  it("withdraws when the node stops answering, announces again when it answers", async () => {
    const t0 = performance.now();
    process.kill(node.proc.pid!, "SIGSTOP");
    let gone: Awaited<ReturnType<typeof waitFor>>;
    try {
      gone = await waitFor(withdrawn, DOWN_DEADLINE);
      expect(await digSoa()).toBe(false); // really not answering
    } finally {
      process.kill(node.proc.pid!, "SIGCONT");
    }
    const t1 = performance.now();
    expect(gone, "a silent DNS node stayed announced").toBeDefined();
    measured.push(`node stopped (SIGSTOP) → withdrawn: ${Math.round(gone!.at - t0)} ms (deadline ${DOWN_DEADLINE} ms)`);
    const back = await waitFor(announced, TIMING.interval_ms * (TIMING.up_after + 1) + TIMING.timeout_ms + 2000);
    expect(back, "not announced again").toBeDefined();
    expect(back!.at - t1).toBeGreaterThanOrEqual(TIMING.interval_ms * (TIMING.up_after - 1) - TIMING.timeout_ms);
    measured.push(`node resumed (SIGCONT) → announced again: ${Math.round(back!.at - t1)} ms`);
    expect(node.output()).toMatch(/"event":"anycast","state":"withdrawn"/);
  });

  it("SIGTERM: the route goes before the node stops answering", async () => {
    let lastOk = 0;
    let polling = true;
    const queries = (async () => {
      for (let i = 0; polling && i < 1000; i++) {
        if (await digSoa()) lastOk = performance.now();
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const exited = new Promise<number | null>((r) => node.proc.once("exit", (code) => r(code)));
    const t0 = performance.now();
    process.kill(node.proc.pid!, "SIGTERM");
    const gone = await waitFor(withdrawn, 2000, 20);
    const code = await exited;
    polling = false;
    await queries;
    expect(gone, "still announced after SIGTERM").toBeDefined();
    expect(code).toBe(0);
    expect(lastOk, "the node stopped answering before the withdrawal was seen").toBeGreaterThan(gone!.at);
    measured.push(`SIGTERM → withdrawn: ${Math.round(gone!.at - t0)} ms; last answer ${Math.round(lastOk - gone!.at)} ms after that`);
  });
});
