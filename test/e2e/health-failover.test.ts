/**
 * Health and failover with real processes: three edges (bare workerd) on 127.0.0.2/.3/.4 with locations on three
 * continents, a tiny origin, and the DNS node probing them; queries with real `dig` (+subnet places the client).
 * Kill an edge → within interval × down_after + 1 s the director stops naming it while the others keep answering;
 * bring it back → it returns within interval × up_after + 1 s; all down → fail-open; drains (at the edge, at the
 * DNS node) take the edge out of answers while it keeps serving HTTP. Measured times are printed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLIENT, DIRECTOR, THREE_EDGES, TOKEN, pollUntil, startCdn, type Cdn } from "../support/dns-cdn.ts";

// Probes get most of a round to answer: on a loaded CI machine a short timeout would mark healthy edges down.
const HEALTH = { interval_ms: 1000, timeout_ms: 800, down_after: 2, up_after: 2 };
const DOWN_DEADLINE = HEALTH.interval_ms * HEALTH.down_after + 1000;
const UP_DEADLINE = HEALTH.interval_ms * HEALTH.up_after + 1000;
const EU = "127.0.0.2";
const NA = "127.0.0.3";
const AS = "127.0.0.4";
const measured: string[] = [];

let cdn: Cdn;
beforeAll(async () => {
  cdn = await startCdn({ edges: THREE_EDGES, health: HEALTH, answers: 3 });
  // Every edge up (first probes) before the checks start.
  const ready = await pollUntil(async () => ((await status()).edges.every((e) => e.state === "up") ? true : undefined), 10_000);
  expect(ready).toBeDefined();
}, 120_000);

afterAll(async () => {
  if (measured.length) console.log(`failover times (interval ${HEALTH.interval_ms} ms, down_after ${HEALTH.down_after}, up_after ${HEALTH.up_after}):\n  ${measured.join("\n  ")}`);
  await cdn?.stop();
});

const london = () => cdn.dig(`+subnet=${CLIENT.london}`, DIRECTOR, "A");
async function status(): Promise<{ failOpen: boolean; edges: Array<{ name: string; state: string; drained: boolean }> }> {
  return (await fetch(`http://127.0.0.1:${cdn.httpPort}/status.json`)).json() as never;
}
const edgeDrain = (name: string, draining: boolean, token: string | null = TOKEN) =>
  fetch(`${cdn.edgeUrl(name)}/.well-known/cdn/drain`, {
    method: "POST",
    headers: token ? { authorization: `Bearer ${token}`, "content-type": "application/json" } : { "content-type": "application/json" },
    body: JSON.stringify({ draining }),
  });
const dnsDrain = (edge: string, draining: boolean, token: string | null = TOKEN) =>
  fetch(`http://127.0.0.1:${cdn.httpPort}/admin/drain`, {
    method: "POST",
    headers: token ? { authorization: `Bearer ${token}` } : {},
    body: JSON.stringify({ edge, draining }),
  });

describe("edge health in DNS answers", () => {
  it("answers with the nearest edges first while all are up", async () => {
    expect((await london()).addresses).toEqual([EU, NA, AS]);
    expect((await cdn.dig(`+subnet=${CLIENT.changchun}`, DIRECTOR, "A")).addresses[0]).toBe(AS);
    expect((await cdn.dig(`+subnet=${CLIENT.milton}`, DIRECTOR, "A")).addresses[0]).toBe(NA);
  });

  it("drops a killed edge within interval × down_after + 1 s while the others keep answering", async () => {
    const killed = performance.now();
    await cdn.stopEdge("eu-lon");
    const stoppedAfter = performance.now() - killed;
    const seen: string[][] = [];
    const gone = await pollUntil(async () => {
      const { addresses } = await london();
      seen.push(addresses);
      return addresses.includes(EU) ? undefined : addresses;
    }, DOWN_DEADLINE);
    const total = performance.now() - killed;
    expect(gone, `eu-lon still answered ${DOWN_DEADLINE} ms after the kill`).toBeDefined();
    expect(total).toBeLessThanOrEqual(DOWN_DEADLINE + 500); // the last poll's own time
    expect(gone!.value).toEqual([NA, AS]); // the next nearest takes its place
    for (const a of seen) expect(a).toEqual(expect.arrayContaining([NA, AS])); // never an empty or partial answer
    measured.push(`edge killed → out of DNS answers: ${Math.round(total)} ms after the kill (process exit took ${Math.round(stoppedAfter)} ms; deadline ${DOWN_DEADLINE} ms)`);
  });

  it("brings the edge back after up_after good probes", async () => {
    await cdn.startEdge("eu-lon");
    const ready = performance.now();
    const back = await pollUntil(async () => ((await london()).addresses[0] === EU ? true : undefined), UP_DEADLINE);
    const ms = performance.now() - ready;
    expect(back, `eu-lon not back ${UP_DEADLINE} ms after it was ready`).toBeDefined();
    expect((await london()).addresses).toEqual([EU, NA, AS]);
    measured.push(`edge restarted (ready) → back in DNS answers: ${Math.round(ms)} ms (deadline ${UP_DEADLINE} ms)`);
  });

  it("fails open with every edge when all are down, and recovers", async () => {
    const killed = performance.now();
    await Promise.all(THREE_EDGES.map((e) => cdn.stopEdge(e.name)));
    const open = await pollUntil(async () => ((await status()).failOpen ? true : undefined), DOWN_DEADLINE);
    expect(open, "no fail-open after every edge went down").toBeDefined();
    measured.push(`all edges killed → fail-open: ${Math.round(performance.now() - killed)} ms`);
    expect((await status()).edges.map((e) => e.state)).toEqual(["down", "down", "down"]);
    expect((await london()).addresses).toEqual([EU, NA, AS]);
    const metrics = await (await fetch(`http://127.0.0.1:${cdn.httpPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(metrics).toContain("parrot_dns_fail_open 1");
    expect(metrics).toContain('parrot_dns_edge_health{edge="eu-lon",state="down"} 1');

    await Promise.all(THREE_EDGES.map((e) => cdn.startEdge(e.name)));
    const up = await pollUntil(async () => ((await status()).edges.every((e) => e.state === "up") ? true : undefined), UP_DEADLINE);
    expect(up, "edges not all up again").toBeDefined();
    expect((await status()).failOpen).toBe(false);
    expect((await london()).addresses).toEqual([EU, NA, AS]);
  }, 90_000);

  /** Waits (bounded) until London is the first answer: the previous case may have left an edge coming back. */
  const nearestIsLondon = () => pollUntil(async () => ((await london()).addresses[0] === EU ? true : undefined), UP_DEADLINE);

  it("drain at the edge: out of DNS answers, still serving HTTP; refused without the token", async () => {
    expect((await edgeDrain("eu-lon", true, null)).status).toBe(401);
    expect((await edgeDrain("eu-lon", true, "wrong-token-wrong-token")).status).toBe(401);
    expect(await nearestIsLondon(), "eu-lon is not the nearest edge to start with").toBeDefined();
    const drained = performance.now();
    expect((await edgeDrain("eu-lon", true)).status).toBe(200);
    const out = await pollUntil(async () => ((await london()).addresses.includes(EU) ? undefined : true), HEALTH.interval_ms + 1000);
    expect(out, "a draining edge stayed in answers").toBeDefined();
    measured.push(`edge drain call → out of DNS answers: ${Math.round(performance.now() - drained)} ms (one probe round)`);
    expect((await status()).edges[0]).toMatchObject({ name: "eu-lon", state: "draining" });
    const res = await fetch(`${cdn.edgeUrl("eu-lon")}/still-served`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("origin body for /still-served\n");
    expect((await edgeDrain("eu-lon", false)).status).toBe(200);
    const back = await pollUntil(async () => ((await london()).addresses[0] === EU ? true : undefined), HEALTH.interval_ms + 1000);
    expect(back, "the edge did not return after its drain ended").toBeDefined();
  });

  it("drain at the DNS node: out at once, authenticated only", async () => {
    expect((await dnsDrain("eu-lon", true, null)).status).toBe(401);
    expect((await dnsDrain("eu-lon", true, "wrong-token-wrong-token")).status).toBe(401);
    expect(await nearestIsLondon(), "eu-lon is not the nearest edge to start with").toBeDefined();
    const res = await dnsDrain("eu-lon", true);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ edge: "eu-lon", draining: true, state: "up" });
    expect((await london()).addresses).toEqual([NA, AS]); // the very next answer
    expect((await fetch(`${cdn.edgeUrl("eu-lon")}/drained-but-serving`)).status).toBe(200);
    expect((await status()).edges[0]).toMatchObject({ name: "eu-lon", state: "up", drained: true });
    expect((await dnsDrain("nope", true)).status).toBe(404);
    expect((await dnsDrain("eu-lon", false)).status).toBe(200);
    expect((await london()).addresses).toEqual([EU, NA, AS]);
  });
});
