/**
 * Anycast at an edge box, with real processes on loopback: the box command (`node scripts/edge.ts`, bare workerd)
 * runs its announcer and BIRD; a second BIRD is the "router" it peers with (other 127.x address and port, no kernel
 * protocol in either). What the router learns is read with `birdc show route … all`.
 * Healthy → the router has the prefix; drain → withdrawn while the edge still serves; a hung workerd → withdrawn
 * after down_after failed checks, back after up_after good ones; the announcer killed → its BIRD dies with it, the
 * route goes at once; SIGTERM → the route goes before the listener closes; workerd killed → the box exits and the
 * route goes; the box command killed → the route goes although the orphaned workerd still serves; a multi-process
 * box whose workerd is killed and restarted keeps its route. Measured times are printed.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { alive, ANYCAST_PREFIX, anycastToml, waitFor, type AnycastTiming } from "../support/anycast.ts";
import { loopbackPair, startBirdRouter, type BirdRouter } from "../support/bird-router.ts";
import { freePort } from "../support/ports.ts";

const TOKEN = "anycast-e2e-token-0123456789";
// Checks get most of a round: a loaded CI machine must not see false failures.
const TIMING: AnycastTiming = { interval_ms: 500, timeout_ms: 400, down_after: 2, up_after: 3, withdraw_grace_ms: 1500 };
/** Failed checks → withdrawn: down_after rounds, the last check's timeout, then birdc, BIRD and the router's table on a loaded machine. */
const DOWN_DEADLINE = TIMING.interval_ms * TIMING.down_after + TIMING.timeout_ms + 2000;
/** From a dead session to the router's table: immediate in BIRD, plus polling and a loaded machine. */
const SESSION_DEADLINE = 2000;
/** A (re)started box: BIRD's session (the router reconnects every second), then up_after good checks. */
const ANNOUNCE_DEADLINE = 20_000;

const { box: BOX, router: ROUTER_ADDRESS } = loopbackPair();
const measured: string[] = [];
let dir: string;
let origin: Served;
let router: BirdRouter;
let boxPort: number;
let box: Running;
let base: string;

const announced = async () => ((await router.routes(ANYCAST_PREFIX)).length ? true : undefined);
const withdrawn = async () => ((await router.routes(ANYCAST_PREFIX)).length ? undefined : true);
/** The last match's first group in the box's output (an announcer restarted prints its lines again). */
const lastOf = (label: RegExp) => [...box.output().matchAll(new RegExp(label, "g"))].at(-1)?.[1];
const pidOf = (label: RegExp) => Number(lastOf(label));
const metricsBase = () => lastOf(/anycast: metrics (\S+)\/metrics/);
const health = () => fetch(`${base}/.well-known/cdn/health`);

/** Starts the box command with `[anycast]`; resolves once it printed `edge ready`. */
async function startBox(extra: string[] = []): Promise<void> {
  await box?.stop(); // one box per store directory: the previous one goes first (a no-op when it is gone already)
  box = await startNodeScript("scripts/edge.ts", ["--config", join(dir, "cdn.toml"), "--host", BOX, "--port", "0", ...extra], /edge ready: (\S+)/, 60_000);
  base = box.match[1]!;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "parrot-anycast-edge-"));
  origin = await serveFetch((req) => new Response(`origin body for ${new URL(req.url).pathname}\n`, { headers: { "cache-control": "no-store" } }));
  boxPort = await freePort(BOX);
  router = await startBirdRouter({ dir: join(dir, "router"), address: ROUTER_ADDRESS, boxAddress: BOX, boxPort, boxAs: 64512 });
  writeFileSync(
    join(dir, "cdn.toml"),
    `[edge]
name = "anycast-box"
origin = "${origin.url}"
store_dir = "${join(dir, "store")}"

[admin]
token = "${TOKEN}"
metrics_public = true
${anycastToml({ service: "edge", router, boxAddress: BOX, boxPort, runDir: join(dir, "run"), timing: TIMING })}`,
  );
  await startBox();
}, 90_000);

afterAll(async () => {
  if (measured.length) console.log(`anycast at an edge (interval ${TIMING.interval_ms} ms, down_after ${TIMING.down_after}, up_after ${TIMING.up_after}, grace ${TIMING.withdraw_grace_ms} ms):\n  ${measured.join("\n  ")}`);
  await box?.stop();
  await router?.stop();
  await origin?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("anycast at an edge box", () => {
  it("announces the prefix once the edge is healthy, with the configured communities, MED and prepends", async () => {
    const started = performance.now();
    const got = await waitFor(announced, ANNOUNCE_DEADLINE);
    expect(got, `the router never learned ${ANYCAST_PREFIX}:\n${box.output()}`).toBeDefined();
    measured.push(`box ready → announced at the router: ${Math.round(got!.at - started)} ms`);
    const [route] = await router.routes(ANYCAST_PREFIX);
    expect(route!.attributes).toMatchObject({
      as_path: "64512 64512", // prepend = 1
      med: "50",
      community: "(64512,100)",
      large_community: "(64512, 1, 2)",
      next_hop: BOX,
    });
    expect(await router.session()).toBe("Established");
    // Nothing reached the kernel: BIRD only speaks BGP here.
    expect(execFileSync("ip", ["-4", "route", "show", "table", "all", ANYCAST_PREFIX], { encoding: "utf8" }).trim()).toBe("");
    // The edge's health endpoint says it (the announcer reported it), for the DNS nodes' status page.
    const header = await waitFor(async () => ((await health()).headers.get("cdn-anycast") === "announced" ? true : undefined), 3000);
    expect(header, "the health endpoint never said cdn-anycast: announced").toBeDefined();
  });

  it("serves metrics and status: announced, the session Established, no flaps", async () => {
    const url = metricsBase();
    expect(url, box.output()).toBeDefined();
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain("parrot_anycast_announced 1");
    expect(metrics).toContain('parrot_anycast_bgp_session_up{neighbor="router"} 1');
    expect(metrics).toContain('parrot_anycast_bgp_session_state{neighbor="router",state="Established"} 1');
    expect(metrics).toContain("parrot_anycast_changes_total 1");
    const status = (await (await fetch(`${url}/status.json`)).json()) as { announced: string; health: { state: string }; sessions: unknown[] };
    expect(status).toMatchObject({ announced: "announced", health: { state: "up" }, sessions: [{ neighbor: "router", state: "Established" }] });
    // The announcement's log line.
    expect(box.output()).toMatch(/\{"time":"[^"]+","event":"anycast","state":"announced"/);
  });

  it("refuses announcement reports without the admin token", async () => {
    const post = (token?: string) =>
      fetch(`${base}/.well-known/cdn/anycast`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ state: "withdrawn" }),
      });
    expect((await post()).status).toBe(401);
    expect((await post("wrong-token-wrong-token")).status).toBe(401);
    const bad = await fetch(`${base}/.well-known/cdn/anycast`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: '{"state":"maybe"}' });
    expect(bad.status).toBe(400);
    expect((await health()).headers.get("cdn-anycast")).toBe("announced");
  });

  it("drain: withdrawn within a round while the edge still serves HTTP; undrained: announced again", async () => {
    const drain = (draining: boolean) =>
      fetch(`${base}/.well-known/cdn/drain`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ draining }) });
    const t0 = performance.now();
    expect((await drain(true)).status).toBe(200);
    const gone = await waitFor(withdrawn, TIMING.interval_ms + SESSION_DEADLINE);
    expect(gone, "a draining edge stayed announced").toBeDefined();
    measured.push(`drain call → withdrawn at the router: ${Math.round(gone!.at - t0)} ms`);
    const res = await fetch(`${base}/while-draining`);
    expect([res.status, await res.text()]).toEqual([200, "origin body for /while-draining\n"]);
    const h = await waitFor(async () => {
      const r = await health();
      return r.status === 503 && r.headers.get("cdn-anycast") === "withdrawn" ? true : undefined;
    }, 3000);
    expect(h, "health did not say draining + withdrawn").toBeDefined();
    expect((await router.routes(ANYCAST_PREFIX)).length).toBe(0); // still withdrawn, several rounds later

    const t1 = performance.now();
    expect((await drain(false)).status).toBe(200);
    const back = await waitFor(announced, TIMING.interval_ms * 2 + SESSION_DEADLINE);
    expect(back, "not announced again after the drain ended").toBeDefined();
    measured.push(`drain ended → announced again: ${Math.round(back!.at - t1)} ms (the first good check ends a drain, as at the DNS nodes)`);
  });

  it("a hung workerd: withdrawn after down_after failed checks; announced again only after up_after good ones", async () => {
    const workerd = pidOf(/workerd pids: (\d+)/);
    expect(workerd).toBeGreaterThan(0);
    const t0 = performance.now();
    process.kill(workerd, "SIGSTOP");
    let gone: Awaited<ReturnType<typeof waitFor>>;
    try {
      gone = await waitFor(withdrawn, DOWN_DEADLINE);
    } finally {
      process.kill(workerd, "SIGCONT");
    }
    const t1 = performance.now();
    expect(gone, `a hung edge stayed announced ${DOWN_DEADLINE} ms:\n${box.output().slice(-3000)}`).toBeDefined();
    // Not at the first failure: checks start at least interval_ms apart.
    expect(gone!.at - t0).toBeGreaterThanOrEqual(TIMING.interval_ms * (TIMING.down_after - 1));
    measured.push(`workerd stopped (SIGSTOP) → withdrawn: ${Math.round(gone!.at - t0)} ms (deadline ${DOWN_DEADLINE} ms)`);
    const back = await waitFor(announced, TIMING.interval_ms * (TIMING.up_after + 1) + TIMING.timeout_ms + SESSION_DEADLINE);
    expect(back, "not announced again after the edge recovered").toBeDefined();
    // up_after good checks a round apart, the first started at most timeout_ms before the edge answered again.
    expect(back!.at - t1).toBeGreaterThanOrEqual(TIMING.interval_ms * (TIMING.up_after - 1) - TIMING.timeout_ms);
    measured.push(`workerd resumed (SIGCONT) → announced again: ${Math.round(back!.at - t1)} ms (up_after ${TIMING.up_after} × ${TIMING.interval_ms} ms)`);
  });

  it("the announcer killed (kill -9): its BIRD dies with it, the router withdraws at once; a new announcer announces again", async () => {
    const announcer = pidOf(/anycast: announcer pid (\d+)/);
    const bird = pidOf(/BIRD pid (\d+)/);
    expect(await alive(announcer)).toBe(true);
    expect(await alive(bird)).toBe(true);
    const t0 = performance.now();
    process.kill(announcer, "SIGKILL");
    const gone = await waitFor(withdrawn, SESSION_DEADLINE);
    expect(gone, "the route outlived the announcer").toBeDefined();
    measured.push(`announcer killed → withdrawn at the router: ${Math.round(gone!.at - t0)} ms`);
    expect(await waitFor(async () => ((await alive(bird)) ? undefined : true), 2000), "BIRD outlived its announcer").toBeDefined();
    expect((await fetch(`${base}/still-serving`)).status).toBe(200); // the edge itself is fine
    const back = await waitFor(announced, ANNOUNCE_DEADLINE);
    expect(back, `no new announcer announced:\n${box.output()}`).toBeDefined();
    expect(box.output()).toMatch(/anycast: announcer restarted/);
    measured.push(`announcer killed → restarted and announced again: ${Math.round(back!.at - t0)} ms`);
  });

  it("BIRD killed alone: the session closes (withdrawn at once); the announcer's watchdog restarts it and announces again", async () => {
    const url = metricsBase()!;
    const { birdPid } = (await (await fetch(`${url}/status.json`)).json()) as { birdPid: number };
    expect(await alive(birdPid)).toBe(true);
    const t0 = performance.now();
    process.kill(birdPid, "SIGKILL");
    const gone = await waitFor(withdrawn, SESSION_DEADLINE);
    expect(gone, "the route outlived BIRD").toBeDefined();
    // Three failed control calls (one a round), then a new BIRD, its session, and the routes enabled again.
    const back = await waitFor(announced, TIMING.interval_ms * 4 + ANNOUNCE_DEADLINE);
    expect(back, `BIRD was not restarted:\n${box.output()}`).toBeDefined();
    expect(box.output()).toMatch(/"event":"anycast_watchdog","action":"restart speaker"/);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/parrot_anycast_speaker_restarts_total [1-9]/);
    measured.push(`BIRD killed → withdrawn: ${Math.round(gone!.at - t0)} ms; restarted by the watchdog and announced again: ${Math.round(back!.at - t0)} ms`);
  });

  it("SIGTERM: the router loses the route before the edge's listener closes", async () => {
    let lastOk = 0;
    let polling = true;
    const requests = (async () => {
      for (let i = 0; polling && i < 2000; i++) {
        const ok = await fetch(`${base}/during-stop`, { signal: AbortSignal.timeout(1000) }).then(async (r) => (await r.text(), r.ok), () => false);
        if (ok) lastOk = performance.now();
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const exited = new Promise<number | null>((r) => box.proc.once("exit", (code) => r(code)));
    const t0 = performance.now();
    process.kill(box.proc.pid!, "SIGTERM"); // the box command only, as systemd's KillMode=mixed does
    const gone = await waitFor(withdrawn, SESSION_DEADLINE, 20);
    const code = await exited;
    polling = false;
    await requests;
    expect(gone, "still announced after SIGTERM").toBeDefined();
    expect(code).toBe(0);
    expect(lastOk, "requests stopped being served before the withdrawal was seen").toBeGreaterThan(gone!.at);
    measured.push(
      `SIGTERM → withdrawn at the router: ${Math.round(gone!.at - t0)} ms; last request served ${Math.round(lastOk - gone!.at)} ms after that (grace ${TIMING.withdraw_grace_ms} ms)`,
    );
  });

  it("kill -9 of a single-process edge's workerd, kept down: withdrawn within the configured time; back once it restarts", async () => {
    await startBox();
    expect(await waitFor(announced, ANNOUNCE_DEADLINE), "not announced after the restart").toBeDefined();
    const workerd = pidOf(/workerd pids: (\d+)/);
    // Hold its shell loop, so the workerd stays dead for as long as the test wants.
    const loop = Number(readFileSync(`/proc/${workerd}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
    process.kill(loop, "SIGSTOP");
    const t0 = performance.now();
    process.kill(workerd, "SIGKILL");
    let gone: Awaited<ReturnType<typeof waitFor>>;
    try {
      gone = await waitFor(withdrawn, DOWN_DEADLINE);
    } finally {
      process.kill(loop, "SIGCONT");
    }
    expect(gone, "a dead edge stayed announced").toBeDefined();
    measured.push(`workerd killed (single process) → withdrawn: ${Math.round(gone!.at - t0)} ms (deadline ${DOWN_DEADLINE} ms)`);
    // The loop recovers the store and starts workerd again: announced again after up_after good checks.
    expect(await waitFor(announced, ANNOUNCE_DEADLINE + 10_000), "not announced again after the restart").toBeDefined();
    expect(box.output()).toMatch(/workerd \d+ exited .*starting it again/);
  }, 60_000);

  it("kill -9 of the box command: announcer, BIRD and workerd die with it, withdrawn at once", async () => {
    await startBox();
    expect(await waitFor(announced, ANNOUNCE_DEADLINE), "not announced after the restart").toBeDefined();
    const workerd = pidOf(/workerd pids: (\d+)/);
    const t0 = performance.now();
    process.kill(box.proc.pid!, "SIGKILL");
    const gone = await waitFor(withdrawn, SESSION_DEADLINE);
    expect(gone, "the route outlived the box command").toBeDefined();
    measured.push(`box command killed → withdrawn: ${Math.round(gone!.at - t0)} ms`);
    // Nothing of the box outlives its command (parent-death signals), so nothing is left serving unsupervised.
    const dead = await waitFor(async () => (existsSync(`/proc/${workerd}`) ? undefined : true), 5_000);
    expect(dead, "workerd outlived the box command").toBeDefined();
  }, 60_000);

  it("a multi-process box whose workerd is killed and restarted by its supervisor keeps its route (no flap)", async () => {
    await startBox(["--processes", "2"]);
    expect(await waitFor(announced, ANNOUNCE_DEADLINE), "not announced").toBeDefined();
    const [first] = /workerd pids: ([\d ]+) \(store \d+\)/.exec(box.output())![1]!.split(" ").map(Number);
    process.kill(first!, "SIGKILL");
    // The other process keeps answering the health checks while the supervisor restarts this one (0.2 s).
    const flap = await waitFor(withdrawn, TIMING.interval_ms * (TIMING.down_after + 2), 50);
    expect(flap, "a restarted edge process withdrew the whole box").toBeUndefined();
    expect(box.output()).toMatch(/workerd \d+ exited .*starting it again/);
  }, 60_000);
});
