/**
 * The CDN's promises in the world (test/world/world.ts): regions in network namespaces joined by links with real
 * round-trip times. Needs network namespaces, veth and TUN devices (root or CAP_NET_ADMIN, as in CI), BIRD,
 * nats-server, python3 and setpriv; without them the tests are skipped with the reason printed.
 * The report (the README's table) is printed at the end.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RECONNECT } from "../../src/anycast/bird-config.ts";
import { buildWorld, LINKS, REGIONS, TIMING, worldUnavailable, type World } from "./world.ts";
import { LEADER_HEARD_WITHIN_MS } from "../../src/control/lease.ts";
import { measureFailover, measureHealthUnderLoss, measureNearest, measurePartition, measurePurge, percentile, report, settle, type FailoverResult, type LossResult, type NearestRow, type PartitionResult, type PurgeResult } from "./measure.ts";

const why = await worldUnavailable();
if (why) console.log(`world tests skipped: ${why}`);

const rtt = (a: string, b: string) => LINKS.find((l) => (l.a === a && l.b === b) || (l.a === b && l.b === a))!.rttMs;
/** Timing noise of one measured RTT on a loaded 2-core machine (process start of curl, timers). */
const NOISE_MS = 40;

describe.skipIf(why !== undefined)("the world", () => {
  let world: World;
  const measured: { nearest?: NearestRow[]; purge?: PurgeResult; failover?: FailoverResult[]; loss?: LossResult; partition?: PartitionResult } = {};

  beforeAll(async () => {
    world = await buildWorld({ log: (s) => console.log(s) });
    await settle(world);
  }, 240_000);

  afterAll(async () => {
    console.log(report(measured));
    await world?.destroy();
  }, 60_000);

  it("the links carry their round-trip times; each client is sent to its nearest edge by DNS (by its source address, whichever DNS node it asks; by ECS through a far resolver) and by anycast", async () => {
    const rows = (measured.nearest = await measureNearest());
    for (const row of rows) {
      for (const r of REGIONS) {
        if (r.id === row.region) expect(row.rttMs[r.id]!, `${row.region} → its own edge`).toBeLessThan(NOISE_MS);
        else expect(row.rttMs[r.id]!, `${row.region} → ${r.id}`).toBeGreaterThan(rtt(row.region, r.id) * 0.95);
      }
      expect(row.bestEdge).toBe(row.region);
      expect(row.dnsEdge, `DNS answer for ${row.region}`).toBe(row.bestEdge);
      expect(row.farDnsEdge, `the farthest DNS node's answer for ${row.region}`).toBe(row.bestEdge);
      expect(row.ecsEdge, `ECS for ${row.region}'s network from the farthest region`).toBe(row.bestEdge);
      expect(row.anycastEdge, `anycast from ${row.region}`).toBe(row.bestEdge);
      expect(row.dnsRttMs).toBeLessThanOrEqual(row.bestRttMs + NOISE_MS);
    }
  }, 120_000);

  it("a purge through the control plane reaches every edge across the long links within bounds", async () => {
    const p = (measured.purge = await measurePurge(REGIONS[0]!, 5));
    const longest = Math.max(...LINKS.map((l) => l.rttMs));
    for (const [edge, xs] of Object.entries(p.perEdge)) {
      expect(xs.length, edge).toBe(5);
      // Publish (JetStream quorum across the links), delivery to the edge's agent, its batch: a few long RTTs.
      expect(percentile(xs, 99), `purge at ${edge}`).toBeLessThan(10 * longest + 1000);
    }
  }, 120_000);

  it("10 % loss on every long link for 15 s: no DNS node takes a live edge out of its answers (no health flapping)", async () => {
    const l = (measured.loss = await measureHealthUnderLoss(world, 0.1, 15));
    expect(l.polls).toBeGreaterThan(5);
    expect(l.downSeen).toEqual(Object.fromEntries(REGIONS.map((r) => [r.id, []])));
  }, 120_000);

  it("a region cut off from the others, its JetStream server too: its edge stops trusting its cache within its lease and never serves the URL purged meanwhile as a HIT once it says so; current again after the mend", async () => {
    const ap = REGIONS[2]!;
    const p = (measured.partition = await measurePartition(world, ap, 15));
    // ap's server may have led the control stream: it keeps leading ap's agent until Raft's lost-quorum interval
    // (10 s), but confirms nothing once it has not heard a quorum for LEADER_HEARD_WITHIN_MS; then the lease runs out
    // (lease_ms, the default 5 s here), checked every second.
    const trustEndsMs = LEADER_HEARD_WITHIN_MS + 5_000 + 1_000;
    expect(p.cutOffAfterMs, "ap's edge never said it was cut off").toBeDefined();
    expect(p.cutOffAfterMs!).toBeLessThan(trustEndsMs + 2_000);
    expect(p.purgedAnswers).toBeGreaterThan(2);
    // Before cut-off a HIT is the lease's promise (a purge reaches a box within lease_ms); after it, never.
    expect(p.lastHitAfterMs ?? 0).toBeLessThanOrEqual(p.cutOffAfterMs!);
    expect(p.currentAfterMs, "ap's edge never current again after the mend").toBeDefined();
  }, 180_000);

  it("an edge cut off (alive, unreachable): its region's clients are served again through anycast within the BGP hold time, through DNS after TTL + health", async () => {
    const ap = REGIONS[2]!;
    const f = await measureFailover(world, ap, "cut");
    (measured.failover ??= []).push(f);
    const h = TIMING.health;
    expect(f.anycast.servedAfterMs, `anycast never served again (${f.anycast.lastFailure}); ${f.diagnosis}`).toBeDefined();
    // Nothing tells the router: the session ends when the hold time runs out (the box's own checks pass).
    expect(f.anycast.servedAfterMs!).toBeLessThan(TIMING.anycast.hold_time * 1000 + 3000);
    expect(f.anycast.edge).toBe("us"); // ap's next nearest (188.4 ms against 348.8 ms to eu)
    expect(f.dns.servedAfterMs, `DNS never served again (${f.dns.lastFailure}); ${f.diagnosis}`).toBeDefined();
    expect(f.dns.servedAfterMs!).toBeLessThan(TIMING.dnsTtl * 1000 + h.interval_ms * (h.down_after + 1) + h.timeout_ms + 3000);
    expect(f.dns.edge).toBe("us");
    // Mended: the box's BIRD connects again by itself (BIRD's default error wait, 60 s, kept it out for ~50 s).
    expect(f.backAfterMendMs, "ap's own edge never served through anycast again after the cut was mended").toBeDefined();
    expect(f.backAfterMendMs!).toBeLessThan((RECONNECT.errorWaitS[0] + RECONNECT.retryS) * 1000 + 5000);
  }, 120_000);

  it("an edge killed: its region's clients are served by the next nearest edge, at once through anycast and after TTL + health through DNS", async () => {
    const eu = REGIONS[0]!;
    const f = await measureFailover(world, eu, "killed");
    (measured.failover ??= []).push(f);
    const a = TIMING.anycast;
    const h = TIMING.health;
    expect(f.anycast.servedAfterMs, `anycast never served again (${f.anycast.lastFailure}); ${f.diagnosis}`).toBeDefined();
    // The box's BIRD dies with it: the session closes and the router takes the next route at once.
    expect(f.anycast.servedAfterMs!).toBeLessThan(a.interval_ms * a.down_after + a.timeout_ms + 2000);
    expect(f.anycast.edge).toBe("us"); // eu's next nearest (175.7 ms against 348.8 ms to ap)
    expect(f.dns.servedAfterMs, `DNS never served again (${f.dns.lastFailure}); ${f.diagnosis}`).toBeDefined();
    // A stub that keeps the first address for the TTL: the TTL, then the DNS node's probes must have seen it down.
    expect(f.dns.servedAfterMs!).toBeLessThan(TIMING.dnsTtl * 1000 + h.interval_ms * (h.down_after + 1) + h.timeout_ms + 3000);
    expect(f.dns.edge).toBe("us");
  }, 120_000);
});
