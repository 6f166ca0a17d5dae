/**
 * The control agent's purge batches on a bare workerd box with two edge processes (`processes = 2`; issue 19).
 * A batch is recorded in the box's purge log alone ("log_only"), as on a one-process box: the store's entries stay
 * (no get and delete per URL), and every process applies the log from its first store answer after the purge was
 * answered (the store's answers carry the log's sequence), not a second later when it would read the log anyway.
 *
 * Which process answers is not left to chance: keep-alive connections opened before the purge are each held by one
 * process (the kernel's socket table says which), and after the purge's answer every one of them asks again.
 */
import { Agent } from "node:http";
// @ts-expect-error: the package ships no types
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningWorkerdEdge } from "../../src/node/workerd-host.ts";
import { getOver, serverPids, type ConnectionAnswer } from "../support/socket-owners.ts";
import { startEdgeAndOrigin, type EdgeAndOrigin } from "../support/workerd-edge.ts";

const TOKEN = "purge-processes-token-0123456789";
/** Connections opened before the purge; more (up to MAX) until both processes hold some. */
const CONNECTIONS = 16;
const MAX_CONNECTIONS = 64;
const STORED = 50;

let box: EdgeAndOrigin;
let edge: RunningWorkerdEdge;
/** What the origin answers now: the purge's test changes it after the entries were stored. */
let version = 1;

beforeAll(async () => {
  box = await startEdgeAndOrigin(
    "purge-processes",
    (req) => new Response(`${new URL(req.url).pathname} v${version}`, { headers: { "cache-control": "max-age=600" } }),
    (origin) => `[edge]\nname = "purge-processes"\norigin = "${origin}"\naccess_log = false\nprocesses = 2\n[admin]\ntoken = "${TOKEN}"\n`,
  );
  edge = box.edge;
}, 60_000);

afterAll(async () => {
  await box?.stop();
});

/** One GET through `agent` (one keep-alive connection each). */
const get = (agent: Agent, path: string, headers: Record<string, string> = {}): Promise<ConnectionAnswer> => getOver(edge.url, agent, path, headers).answer;

async function storeEntries(agent: Agent): Promise<number> {
  const m = await get(agent, "/.well-known/cdn/metrics", { authorization: `Bearer ${TOKEN}` });
  expect(m.status).toBe(200);
  const families = parsePrometheusTextFormat(m.body) as Array<{ name: string; metrics: Array<{ value: string }> }>;
  return Number(families.find((f) => f.name === "parrot_edge_store_entries")?.metrics[0]?.value);
}

describe("the control agent's purge batch on a box with two edge processes", () => {
  it("is recorded in the log alone, and no process serves a purged entry after the answer", { timeout: 120_000 }, async () => {
    const pids = edge.edgePids();
    expect(new Set(pids).size).toBe(2);
    const agents: Agent[] = [];
    try {
      // Connections held by each process, each having stored /p/x (the first) and served it from memory (the second).
      const owner = new Map<Agent, number>();
      for (let opened = 0; opened < MAX_CONNECTIONS; opened++) {
        const agent = new Agent({ keepAlive: true, maxSockets: 1 });
        agents.push(agent);
        const first = await get(agent, "/p/x");
        expect([first.status, first.body]).toEqual([200, "/p/x v1"]);
        const second = await get(agent, "/p/x");
        expect([second.body, second.xcs]).toEqual(["/p/x v1", "HIT"]);
        owner.set(agent, serverPids(new URL(edge.url).port).get(second.port)!);
        if (agents.length >= CONNECTIONS && new Set(owner.values()).size === 2) break;
      }
      expect(new Set(owner.values())).toEqual(new Set(pids));
      for (let i = 0; i < STORED; i++) expect((await get(agents[0]!, `/w/${i}`)).body).toBe(`/w/${i} v1`);
      const before = await storeEntries(agents[0]!);
      expect(before).toBeGreaterThanOrEqual(STORED + 1);

      // Both processes answer just before the purge (a process reads the log anyway once a second, at its first
      // request after that: only the store's sequence makes the next answers see a purge made within the second).
      for (const a of await Promise.all(agents.map((agent) => get(agent, "/p/x")))) expect([a.body, a.xcs]).toEqual(["/p/x v1", "HIT"]);
      version = 2;
      // The agent's own call (EdgeAdmin.purge): 1,000 URLs, the stored ones among them.
      const urls = [`${edge.url}/p/x`, ...Array.from({ length: STORED }, (_, i) => `${edge.url}/w/${i}`), ...Array.from({ length: 949 }, (_, i) => `${edge.url}/none/${i}`)];
      const res = await fetch(`${edge.url}/.well-known/cdn/purge`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ urls, fanout: false, log_only: true }),
      });
      expect(res.status).toBe(200);
      await res.text();

      // Every connection, in both processes, right after the answer: never the purged body.
      const after = await Promise.all(agents.map((agent) => get(agent, "/p/x")));
      const table = serverPids(new URL(edge.url).port);
      expect(after.filter((a) => a.body !== "/p/x v2").map((a) => `process ${table.get(a.port)}: ${a.body} ${a.xcs}`)).toEqual([]);
      expect(new Set(after.map((a) => table.get(a.port)))).toEqual(new Set(pids)); // the same connections, both processes
      // Nothing was deleted one by one (a store get and delete per URL before): the purged entries stay on disk,
      // never served; /p/x was stored again in place.
      expect(await storeEntries(agents[0]!)).toBeGreaterThanOrEqual(before);
      for (const i of [0, STORED - 1]) expect((await get(agents[agents.length - 1]!, `/w/${i}`)).body).toBe(`/w/${i} v2`);
    } finally {
      for (const agent of agents) agent.destroy();
    }
  });
});
