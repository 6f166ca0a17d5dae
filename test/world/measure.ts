/**
 * What the world measures, from the clients' namespaces with real clients (dig, curl): which edge a client is sent
 * to and how far it is against the nearest possible, how long a region's clients go unserved when its edge dies
 * (through DNS and through anycast), and how long a purge takes to reach every edge across the long links.
 */
import { addr, ANYCAST, HTTP_PORT, LINKS, ns, REGIONS, runIn, TOKEN, TIMING, waitUntil, type Region, type World } from "./world.ts";

/** The Host every client sends, so every edge keys an object alike (and a purge by URL names it once). */
export const SITE = "www.geo.example.org";

export interface Fetched {
  ok: boolean;
  code: number;
  connectMs: number;
  totalMs: number;
  cache: string;
  /** The edge that answered (the last hop of Via). */
  edge: string;
}

/** One curl from region r's client. */
export async function curlFrom(r: Region, url: string, opts: { maxTime?: number; method?: string; body?: string; headers?: string[] } = {}): Promise<Fetched> {
  const args = ["curl", "-s", "-o", "/dev/null", "--max-time", String(opts.maxTime ?? 2), "-H", `Host: ${SITE}`, "-w", "%{http_code} %{time_connect} %{time_total} %header{x-cache-status}|%header{via}"];
  if (opts.method) args.push("-X", opts.method);
  if (opts.body) args.push("--data-binary", opts.body);
  for (const h of opts.headers ?? []) args.push("-H", h);
  const { out } = await runIn(ns.client(r), [...args, url], (opts.maxTime ?? 2) * 1000 + 5000);
  const [head = "", via = ""] = out.trim().split("|");
  const [code, connect, total, cache] = head.split(" ");
  const n = Number(code);
  return { ok: n >= 200 && n < 400, code: n, connectMs: Number(connect) * 1000, totalMs: Number(total) * 1000, cache: cache ?? "", edge: via?.trim().split(" ").at(-1) ?? "" };
}

/**
 * The director's A answer for region r's client, asked at `dnsOf`'s DNS node: addresses and TTL. With `subnet`, the
 * query carries EDNS Client Subnet as a resolver's does (the answer is then for that network, not for the sender).
 */
export async function resolveFrom(r: Region, dnsOf: Region = r, subnet?: string): Promise<{ addresses: string[]; ttl: number }> {
  const ecs = subnet ? [`+subnet=${subnet}`] : [];
  const { out } = await runIn(ns.client(r), ["dig", "+noall", "+answer", "+tries=1", "+time=2", ...ecs, `@${addr.dns(dnsOf)}`, "director.geo.example.org", "A"]);
  const rows = out.split("\n").map((l) => l.trim().split(/\s+/)).filter((c) => c[3] === "A");
  return { addresses: rows.map((c) => c[4]!), ttl: rows.length ? Number(rows[0]![1]) : 0 };
}

const edgeOf = (address: string) => REGIONS.find((r) => addr.edge(r) === address)?.id ?? address;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

export interface NearestRow {
  region: string;
  /** The edge the region's own DNS node answers first, and what the farthest DNS node answers (by source address). */
  dnsEdge: string;
  farDnsEdge: string;
  dnsRttMs: number;
  bestEdge: string;
  bestRttMs: number;
  /** What the region's DNS node answers a resolver in the farthest region that asks for this region's network (ECS). */
  ecsEdge: string;
  /** The edge anycast reaches from the region, and its RTT. */
  anycastEdge: string;
  anycastRttMs: number;
  rttMs: Record<string, number>;
}

/** For each region's client: RTTs (TCP connect, median of 3) to every edge, what DNS answers, where anycast goes. */
export async function measureNearest(): Promise<NearestRow[]> {
  const rows: NearestRow[] = [];
  for (const r of REGIONS) {
    const rttMs: Record<string, number> = {};
    for (const e of REGIONS) {
      const samples: number[] = [];
      for (let i = 0; i < 3; i++) samples.push((await curlFrom(r, `http://${addr.edge(e)}:${HTTP_PORT}/.well-known/cdn/health`)).connectMs);
      rttMs[e.id] = median(samples);
    }
    const best = REGIONS.map((e) => e.id).sort((a, b) => rttMs[a]! - rttMs[b]!)[0]!;
    const own = await resolveFrom(r);
    const far = REGIONS.filter((o) => o !== r).sort((a, b) => rttMs[b.id]! - rttMs[a.id]!)[0]!;
    const viaFar = await resolveFrom(r, far);
    // A resolver in the farthest region asking on behalf of this region's clients: the answer follows the subnet.
    const ecs = await resolveFrom(far, r, `10.${r.n}.0.0/24`);
    const anycast: Fetched[] = [];
    for (let i = 0; i < 3; i++) anycast.push(await curlFrom(r, `http://${ANYCAST}:${HTTP_PORT}/img/logo.png`));
    const dnsEdge = edgeOf(own.addresses[0] ?? "none");
    rows.push({
      region: r.id,
      dnsEdge,
      farDnsEdge: edgeOf(viaFar.addresses[0] ?? "none"),
      ecsEdge: edgeOf(ecs.addresses[0] ?? "none"),
      dnsRttMs: rttMs[dnsEdge] ?? Number.NaN,
      bestEdge: best,
      bestRttMs: rttMs[best]!,
      anycastEdge: anycast.at(-1)!.edge,
      anycastRttMs: median(anycast.map((a) => a.connectMs)),
      rttMs,
    });
  }
  return rows;
}

export interface PathOutcome {
  /** From the kill to the first request served again (undefined: never within the deadline). */
  servedAfterMs?: number;
  failed: number;
  requests: number;
  /** The edge that served once it was back. */
  edge: string;
  /** The last failed request: its time after the event, HTTP code (0: no answer) and curl's time. */
  lastFailure?: string;
}

export interface FailoverResult {
  region: string;
  /** killed: the edge box SIGKILLed; cut: the box alive but its link to the region's router down (packets vanish). */
  how: "killed" | "cut";
  dns: PathOutcome;
  anycast: PathOutcome;
  /** When a path was never served again: what the region's router and the links said at the deadline. */
  diagnosis?: string;
  /** A cut: from mending it to the region's client being served through anycast by its own edge again. */
  backAfterMendMs?: number;
}

/**
 * Takes region r's edge away — kills its box (SIGKILL: its workerd, announcer and BIRD die with it), or cuts its
 * link to the router (the box lives on, unreachable: nothing answers, nothing is refused) — while its client keeps
 * asking, a request every 100 ms on each path: through DNS as a stub that keeps the first address for the answer's
 * TTL, and through the anycast address. Each path is done at 3 successes in a row, or at the deadline. A cut is
 * mended before this returns.
 */
export async function measureFailover(w: World, r: Region, how: "killed" | "cut", deadlineMs = 40_000): Promise<FailoverResult> {
  const path = `/img/logo.png`;
  // Warm both paths, so "served" means the path works, not that the origin is far.
  const warm = await resolveFrom(r);
  await curlFrom(r, `http://${warm.addresses[0]}:${HTTP_PORT}${path}`);
  await curlFrom(r, `http://${ANYCAST}:${HTTP_PORT}${path}`);
  const t0 = performance.now();
  if (how === "killed") await w.procs.get(`edge-${r.id}`)!.stop("SIGKILL");
  else await w.cutEdge(r, true);
  const run = async (next: () => Promise<Fetched>): Promise<PathOutcome> => {
    const o: PathOutcome = { failed: 0, requests: 0, edge: "" };
    let streak = 0;
    while (streak < 3 && performance.now() - t0 < deadlineMs) {
      const sent = performance.now();
      const f = await next();
      o.requests++;
      if (f.ok) {
        if (o.servedAfterMs === undefined) o.servedAfterMs = sent - t0 + f.totalMs;
        o.edge = f.edge;
        streak++;
      } else {
        o.failed++;
        o.lastFailure = `at ${Math.round(sent - t0)} ms: ${f.code} after ${Math.round(f.totalMs)} ms`;
        o.servedAfterMs = undefined;
        streak = 0;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    return o;
  };
  let cached = { address: warm.addresses[0]!, until: t0 + warm.ttl * 1000 };
  const viaDns = run(async () => {
    if (performance.now() >= cached.until) {
      const got = await resolveFrom(r);
      if (got.addresses.length) cached = { address: got.addresses[0]!, until: performance.now() + got.ttl * 1000 };
    }
    return curlFrom(r, `http://${cached.address}:${HTTP_PORT}${path}`, { maxTime: 1 });
  });
  const viaAnycast = run(() => curlFrom(r, `http://${ANYCAST}:${HTTP_PORT}${path}`, { maxTime: 1 }));
  let result: FailoverResult;
  try {
    const [dns, anycast] = await Promise.all([viaDns, viaAnycast]);
    result = { region: r.id, how, dns, anycast };
    if (dns.servedAfterMs === undefined || anycast.servedAfterMs === undefined) result.diagnosis = await diagnose(w, r);
  } finally {
    if (how === "cut") await w.cutEdge(r, false);
  }
  if (how === "cut") {
    // The box's BGP session must come back by itself (its BIRD retries), so the next measurement finds the world whole.
    const mended = performance.now();
    const back = await waitUntil(async () => (await curlFrom(r, `http://${ANYCAST}:${HTTP_PORT}${path}`, { maxTime: 1 })).edge === r.id, deadlineMs, 100);
    if (back) result.backAfterMendMs = performance.now() - mended;
  }
  return result;
}

/** What region r's router knows (BGP sessions, the anycast route) and the links' counters: for a failed wait. */
async function diagnose(w: World, r: Region): Promise<string> {
  const [protocols, route, kernel, client, neighbors, links] = await Promise.all([
    w.birdc(r, "show", "protocols").catch((e: Error) => e.message),
    w.birdc(r, "show", "route", "for", ANYCAST, "all").catch((e: Error) => e.message),
    runIn(ns.router(r), ["ip", "route", "get", ANYCAST, "from", addr.client(r), "iif", "br0"]).then((x) => x.out),
    runIn(ns.client(r), ["ip", "route", "get", ANYCAST]).then((x) => x.out),
    runIn(ns.client(r), ["ip", "neigh"]).then((x) => x.out),
    w.linkControl({ stats: true }).catch((e: Error) => e.message),
  ]);
  return `${r.id}'s router:\n${protocols}\n${route}\nits kernel: ${kernel}\n${r.id}'s client: ${client}${neighbors}\nlinks: ${links}`;
}

export interface PurgeResult {
  rounds: number;
  /** Per edge: milliseconds from the operator's purge call to the first answer there that is not a HIT. */
  perEdge: Record<string, number[]>;
  callMs: number[];
}

/**
 * Purges one URL through the control plane, from region `from`'s operator at its own edge, `rounds` times; each round
 * every region's client polls its own edge (every 25 ms) until the object is no longer a HIT there.
 */
export async function measurePurge(from: Region, rounds: number): Promise<PurgeResult> {
  const result: PurgeResult = { rounds, perEdge: Object.fromEntries(REGIONS.map((r) => [r.id, []])), callMs: [] };
  for (let k = 0; k < rounds; k++) {
    const path = `/img/logo.png?purge-round=${k}-${Date.now()}`;
    const at = (r: Region) => `http://${addr.edge(r)}:${HTTP_PORT}${path}`;
    for (const r of REGIONS) {
      let hit = false;
      for (let i = 0; i < 20 && !hit; i++) hit = (await curlFrom(r, at(r))).cache === "HIT";
      if (!hit) throw new Error(`purge round ${k}: ${r.id} never stored ${path}`);
    }
    const t0 = performance.now();
    const call = curlFrom(from, `http://${addr.edge(from)}:${HTTP_PORT}/.well-known/cdn/purge`, {
      method: "POST",
      maxTime: 15,
      body: JSON.stringify({ urls: [`http://${SITE}${path}`] }),
      headers: [`Authorization: Bearer ${TOKEN}`, "Content-Type: application/json"],
    }).then((f) => {
      if (!f.ok) throw new Error(`purge call failed: ${f.code}`);
      result.callMs.push(performance.now() - t0);
    });
    // One Promise.all with the call: a failed call is this round's failure, never an unhandled rejection.
    await Promise.all([
      call,
      ...REGIONS.map(async (r) => {
        const deadline = t0 + 15_000;
        while (performance.now() < deadline) {
          const f = await curlFrom(r, at(r));
          if (f.ok && f.cache !== "HIT") return void result.perEdge[r.id]!.push(performance.now() - t0);
          await new Promise((res) => setTimeout(res, 25));
        }
        throw new Error(`purge round ${k}: ${r.id} still served a HIT 15 s after the purge`);
      }),
    ]);
  }
  return result;
}

const ms = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "—" : `${Math.round(x)} ms`);

/** The report `npm run world` prints and the world test logs. */
export function report(o: { nearest?: NearestRow[]; purge?: PurgeResult; failover?: FailoverResult[]; loss?: LossResult; partition?: PartitionResult }): string {
  const out: string[] = [];
  if (o.partition) {
    const p = o.partition;
    out.push(
      `Partition: ${p.region} cut off from the other regions for ${p.seconds} s, a URL purged meanwhile from the farthest (call answered ${p.purgeCall}): ${p.region}'s edge knew it was cut off after ${ms(p.cutOffAfterMs)}, served the purged object as a HIT ${p.purgedHits} times in ${p.purgedAnswers} answers (the last ${ms(p.lastHitAfterMs)} after the cut), was current again ${ms(p.currentAfterMs)} after the links returned`,
      "",
    );
  }
  if (o.loss) {
    const seen = Object.entries(o.loss.downSeen).map(([node, edges]) => `${node}: ${edges.length ? edges.join(", ") : "none"}`).join("; ");
    out.push(`Health under ${o.loss.loss * 100} % loss on every long link for ${o.loss.seconds} s (${o.loss.polls} polls of each DNS node): live edges taken out of answers — ${seen}`, "");
  }
  if (o.nearest) {
    out.push("Nearest (RTT = TCP connect from the region's client, median of 3)", "", "| client in | RTT to each edge | DNS answers | its RTT | best edge | best RTT | asked far away, DNS answers | asked by a far resolver with ECS | anycast reaches | its RTT |", "|---|---|---|---|---|---|---|---|---|---|");
    for (const n of o.nearest) {
      const all = Object.entries(n.rttMs).map(([e, x]) => `${e} ${Math.round(x)}`).join(" · ");
      out.push(`| ${n.region} | ${all} | ${n.dnsEdge} | ${ms(n.dnsRttMs)} | ${n.bestEdge} | ${ms(n.bestRttMs)} | ${n.farDnsEdge} | ${n.ecsEdge} | ${n.anycastEdge} | ${ms(n.anycastRttMs)} |`);
    }
    out.push("");
  }
  if (o.purge) {
    out.push(`Purge through the control plane (${o.purge.rounds} rounds; the call answers after report_ms)`, "", "| edge | p50 | p99 |", "|---|---|---|");
    for (const [edge, xs] of Object.entries(o.purge.perEdge)) out.push(`| ${edge} | ${ms(percentile(xs, 50))} | ${ms(percentile(xs, 99))} |`);
    out.push(`| (purge call answered) | ${ms(percentile(o.purge.callMs, 50))} | ${ms(percentile(o.purge.callMs, 99))} |`, "");
  }
  if (o.failover) {
    out.push(
      `Failover: the region's edge box killed, or cut off (DNS TTL ${TIMING.dnsTtl} s, probes every ${TIMING.health.interval_ms} ms, down after ${TIMING.health.down_after}; anycast checks every ${TIMING.anycast.interval_ms} ms, BGP hold time ${TIMING.anycast.hold_time} s)`,
      "",
      "| region | edge | DNS: served again after | failed requests | by | anycast: served again after | failed requests | by | own edge back after the cut is mended |",
      "|---|---|---|---|---|---|---|---|---|",
    );
    for (const f of o.failover)
      out.push(`| ${f.region} | ${f.how} | ${ms(f.dns.servedAfterMs)} | ${f.dns.failed}/${f.dns.requests} | ${f.dns.edge} | ${ms(f.anycast.servedAfterMs)} | ${f.anycast.failed}/${f.anycast.requests} | ${f.anycast.edge} | ${f.how === "cut" ? ms(f.backAfterMendMs) : "—"} |`);
    out.push("");
  }
  return out.join("\n");
}

/**
 * Waits (bounded) until the world is steady: every router's BGP sessions are up and it routes the anycast prefix to
 * its own edge, every DNS node's probes see every edge up, and every region's client is served through anycast.
 */
export async function settle(w: World, ms = 90_000): Promise<void> {
  const deadline = performance.now() + ms;
  let last = "";
  for (const r of REGIONS) {
    for (;;) {
      const protocols = await w.birdc(r, "show", "protocols").catch((e: Error) => e.message);
      const route = await w.birdc(r, "show", "route", "for", ANYCAST).catch((e: Error) => e.message);
      const bgp = protocols.split("\n").filter((l) => /\bBGP\b/.test(l));
      const sessionsUp = bgp.length === REGIONS.length && bgp.every((l) => /Established/.test(l));
      const own = new RegExp(`\\*.*\\n\\s*via ${addr.edge(r).replace(/\./g, "\\.")} `).test(route);
      const status = await runIn(ns.client(r), ["curl", "-s", "--max-time", "2", `http://${addr.dns(r)}:8053/status.json`]);
      const states = ((JSON.parse(status.out || "{}") as { edges?: { name: string; state: string }[] }).edges ?? []).map((e) => `${e.name} ${e.state}`);
      const edgesUp = states.length === REGIONS.length && states.every((s) => s.endsWith(" up"));
      const any = sessionsUp && own && edgesUp ? await curlFrom(r, `http://${ANYCAST}:${HTTP_PORT}/img/logo.png`) : undefined;
      if (any?.ok) break;
      last = `${r.id}: sessions ${sessionsUp ? "up" : `not all up:\n${bgp.join("\n")}`}; anycast via own edge: ${own}; DNS node sees: ${states.join(", ")}; anycast: ${any?.code ?? "-"}`;
      if (performance.now() > deadline) throw new Error(`the world did not settle within ${ms} ms: ${last}`);
      await new Promise((res) => setTimeout(res, 250));
    }
  }
}

export interface LossResult {
  loss: number;
  seconds: number;
  /** Per DNS node: the edges it took out of its answers at some point while every edge was alive. */
  downSeen: Record<string, string[]>;
  /** Status polls per DNS node (every 500 ms). */
  polls: number;
}

/**
 * Loss on every long link for `seconds`: does any DNS node take a live edge out of its answers (health flapping)?
 * Each region's DNS node's status page is polled every 500 ms from its own region. The links are clean again after.
 */
export async function measureHealthUnderLoss(w: World, loss: number, seconds: number): Promise<LossResult> {
  const names = LINKS.map((l) => `${l.a}-${l.b}`);
  const result: LossResult = { loss, seconds, downSeen: Object.fromEntries(REGIONS.map((r) => [r.id, []])), polls: 0 };
  for (const name of names) await w.shapeLink(name, { loss });
  try {
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end) {
      await Promise.all(
        REGIONS.map(async (r) => {
          const status = await runIn(ns.client(r), ["curl", "-s", "--max-time", "1", `http://${addr.dns(r)}:8053/status.json`]);
          const edges = (JSON.parse(status.out || "{}") as { edges?: { name: string; state: string }[] }).edges ?? [];
          for (const e of edges) if (e.state !== "up" && !result.downSeen[r.id]!.includes(e.name)) result.downSeen[r.id]!.push(e.name);
        }),
      );
      result.polls++;
      await new Promise((res) => setTimeout(res, 500));
    }
  } finally {
    for (const name of names) await w.shapeLink(name, { loss: 0 });
  }
  return result;
}

export interface PartitionResult {
  region: string;
  /** How long the region was cut off from the others (every long link of it losing every packet). */
  seconds: number;
  /** The purge made meanwhile, from the farthest region: its call's HTTP status (it cannot hear from the cut box). */
  purgeCall: number;
  /** From the cut to the region's edge saying `cdn-control: cut-off` (its lease ran out: it revalidates everything). */
  cutOffAfterMs?: number;
  /** Answers at the cut region's edge for the URL purged during the partition, and how many were HITs (purged content served). */
  purgedAnswers: number;
  purgedHits: number;
  /** From the cut to the last of those HITs (the box trusted its cache until then). */
  lastHitAfterMs?: number;
  /** From the links' return to the region's edge saying `cdn-control: current` again (it applied what it missed). */
  currentAfterMs?: number;
}

/** The cut region's edge's `cdn-control` health header, asked from its own client (its LAN stays up). */
async function controlState(r: Region): Promise<string> {
  const { out } = await runIn(ns.client(r), ["curl", "-s", "-o", "/dev/null", "--max-time", "1", "-w", "%header{cdn-control}", `http://${addr.edge(r)}:${HTTP_PORT}/.well-known/cdn/health`]);
  return out.trim();
}

/**
 * Region r cut off from the others (loss 1 on each of its long links) for `seconds`: an object stored at every edge
 * is purged from the farthest region meanwhile. Measured at r's edge (from its own client, every 250 ms): when it
 * knows it is cut off, whether it ever serves the purged object as a HIT, and how long after the links return it is
 * current again. The links are whole again after this.
 */
export async function measurePartition(w: World, r: Region, seconds: number): Promise<PartitionResult> {
  const path = `/img/logo.png?partition=${Date.now()}`;
  const at = (e: Region) => `http://${addr.edge(e)}:${HTTP_PORT}${path}`;
  for (const e of REGIONS) {
    let hit = false;
    for (let i = 0; i < 20 && !hit; i++) hit = (await curlFrom(e, at(e))).cache === "HIT";
    if (!hit) throw new Error(`partition: ${e.id} never stored ${path}`);
  }
  const from = REGIONS.filter((o) => o !== r).sort((a, b) => rttBetween(b, r) - rttBetween(a, r))[0]!;
  const mine = LINKS.filter((l) => l.a === r.id || l.b === r.id).map((l) => `${l.a}-${l.b}`);
  const result: PartitionResult = { region: r.id, seconds, purgeCall: 0, purgedAnswers: 0, purgedHits: 0 };
  const t0 = performance.now();
  for (const name of mine) await w.shapeLink(name, { loss: 1 });
  let healed: number | undefined;
  try {
    const purge = curlFrom(from, `http://${addr.edge(from)}:${HTTP_PORT}/.well-known/cdn/purge`, {
      method: "POST",
      maxTime: 15,
      body: JSON.stringify({ urls: [`http://${SITE}${path}`] }),
      headers: [`Authorization: Bearer ${TOKEN}`, "Content-Type: application/json"],
    }).then((f) => void (result.purgeCall = f.code));
    let purged = false;
    void purge.then(() => (purged = true));
    const watch = async (until: () => boolean) => {
      while (!until()) {
        const state = await controlState(r);
        const now = performance.now();
        if (state === "cut-off" && result.cutOffAfterMs === undefined) result.cutOffAfterMs = now - t0;
        if (healed !== undefined && state === "current") return void (result.currentAfterMs = now - healed);
        if (purged) {
          const f = await curlFrom(r, at(r), { maxTime: 2 });
          result.purgedAnswers++;
          if (f.cache === "HIT") {
            result.purgedHits++;
            result.lastHitAfterMs = performance.now() - t0;
          }
        }
        await new Promise((res) => setTimeout(res, 250));
      }
    };
    await watch(() => performance.now() - t0 > seconds * 1000 && purged);
    for (const name of mine) await w.shapeLink(name, { loss: 0 });
    healed = performance.now();
    await watch(() => result.currentAfterMs !== undefined || performance.now() - healed! > 60_000);
  } finally {
    if (healed === undefined) for (const name of mine) await w.shapeLink(name, { loss: 0 });
  }
  return result;
}

const rttBetween = (a: Region, b: Region) => LINKS.find((l) => (l.a === a.id && l.b === b.id) || (l.a === b.id && l.b === a.id))?.rttMs ?? 0;
