/**
 * Connections spread over the edge processes of a bare workerd box (`processes = 2`; issue 20, item 4). Each edge
 * workerd has its own SO_REUSEPORT listening socket (src/node/workerd-host.ts openListeners), so the kernel picks the
 * process for each new connection when it arrives, by a hash of its addresses and ports, not by which process happens
 * to be awake: the share depends neither on timing nor on load. 200 keep-alive connections each make one request;
 * which process took each is read from two independent sources that must agree: the kernel's socket table (`ss -tnp`:
 * the pid holding the server side of each connection) and each process's own count of the requests it answered (its
 * metrics, asked over a connection the table says it holds).
 */
import { Agent } from "node:http";
// @ts-expect-error: the package ships no types
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningWorkerdEdge } from "../../src/node/workerd-host.ts";
import { getOver, serverPids, type ConnectionAnswer } from "../support/socket-owners.ts";
import { startEdgeAndOrigin, type EdgeAndOrigin } from "../support/workerd-edge.ts";

const TOKEN = "spread-test-token-0123456789";
const CONNECTIONS = 200;

let box: EdgeAndOrigin;
let edge: RunningWorkerdEdge;
/** Requests each edge process answered in this file so far, by the socket table (its metrics count the same). */
const answeredByTable = new Map<number, number>();

beforeAll(async () => {
  box = await startEdgeAndOrigin(
    "spread",
    (req) => new Response(`body of ${new URL(req.url).pathname}\n`, { headers: { "cache-control": "max-age=600" } }),
    (origin) => `[edge]\nname = "spread"\norigin = "${origin}"\naccess_log = false\nprocesses = 2\n[admin]\ntoken = "${TOKEN}"\n`,
  );
  edge = box.edge;
}, 60_000);

afterAll(async () => {
  await box?.stop();
});

/** One GET through `agent` (one keep-alive connection each); `connected` settles once the TCP handshake is done. */
const get = (agent: Agent, path: string, headers: Record<string, string> = {}) => getOver(edge.url, agent, path, headers);

/**
 * Which process holds each of the connections that carried `answers` (all still open), by the socket table; checks
 * that each process took a fair share, and that its own request count agrees, asked over one of those connections.
 */
async function expectFairShare(agents: Agent[], answers: ConnectionAnswer[]) {
  const pids = edge.edgePids();
  const clientPorts = answers.map((r) => r.port);
  expect(new Set(clientPorts).size).toBe(CONNECTIONS);
  const owners = serverPids(new URL(edge.url).port);
  const ownerOf = clientPorts.map((p) => owners.get(p));
  expect(ownerOf.filter((pid) => pid === undefined || !pids.includes(pid))).toEqual([]);
  const byTable = new Map(pids.map((pid) => [pid, ownerOf.filter((o) => o === pid).length]));
  // Below 25 % of 200 (50) does not happen by chance: each connection lands on either socket with even odds (mean
  // 100, standard deviation 7).
  for (const [pid, n] of byTable) expect(n, `connections held by edge process ${pid}: ${JSON.stringify([...byTable])}`).toBeGreaterThanOrEqual(CONNECTIONS / 4);
  for (const [pid, n] of byTable) answeredByTable.set(pid, (answeredByTable.get(pid) ?? 0) + n);

  const byCounter = new Map<number, number>();
  for (const pid of pids) {
    const i = ownerOf.indexOf(pid);
    const m = await get(agents[i]!, "/.well-known/cdn/metrics", { authorization: `Bearer ${TOKEN}` }).answer;
    expect(m.status).toBe(200);
    expect(m.port).toBe(clientPorts[i]); // the same connection, so the same process
    const families = parsePrometheusTextFormat(m.body) as Array<{ name: string; metrics: Array<{ value: string }> }>;
    const answered = families.find((f) => f.name === "parrot_edge_requests_total")?.metrics ?? [];
    byCounter.set(pid, answered.reduce((sum, x) => sum + Number(x.value), 0));
  }
  // The metrics path is not counted: each process's count is the requests of this file the table gave it.
  expect(byCounter).toEqual(answeredByTable);
}

describe("connections on a box with two edge processes", () => {
  it(`${CONNECTIONS} keep-alive connections: each process takes a fair share, by the socket table and by its own count`, { timeout: 120_000 }, async () => {
    expect(new Set(edge.edgePids()).size).toBe(2);
    // One agent per connection (at most one socket each): connection i is agent i's, and stays open for its next request.
    const agents = Array.from({ length: CONNECTIONS }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    try {
      const answers = await Promise.all(agents.map((agent, i) => get(agent, `/spread/${i}`).answer));
      for (const [i, r] of answers.entries()) expect([r.status, r.body]).toEqual([200, `body of /spread/${i}\n`]);
      await expectFairShare(agents, answers);
    } finally {
      for (const agent of agents) agent.destroy();
    }
  });

  it("the kernel assigns a connection when it arrives: with one process stopped, connections opened meanwhile still split evenly", { timeout: 120_000 }, async () => {
    // A shared accept queue would give every connection to the process that is running; per-process SO_REUSEPORT
    // sockets queue about half of them for the stopped one, which answers them once it runs again.
    const [stopped] = edge.edgePids();
    const agents = Array.from({ length: CONNECTIONS }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    process.kill(stopped!, "SIGSTOP");
    let resumed = false;
    try {
      const requests = agents.map((agent, i) => get(agent, `/while-stopped/${i}`));
      await Promise.all(requests.map((r) => r.connected)); // every handshake done by the kernel: every socket chosen
      process.kill(stopped!, "SIGCONT");
      resumed = true;
      const answers = await Promise.all(requests.map((r) => r.answer));
      for (const [i, r] of answers.entries()) expect([r.status, r.body]).toEqual([200, `body of /while-stopped/${i}\n`]);
      await expectFairShare(agents, answers);
    } finally {
      if (!resumed) process.kill(stopped!, "SIGCONT");
      for (const agent of agents) agent.destroy();
    }
  });
});
