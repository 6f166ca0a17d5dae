/**
 * The redirector's daily statistics and its section on a DNS node's status page, with real processes: Node origin
 * and mirror (one mirror up, one down), `scripts/redirector.ts` with [redirector] stats_dir and public_url, and
 * `scripts/dns.ts` reading the same cdn.toml. The statistics survive a restart of the redirector (today's document
 * is rewritten every minute and on stop, and continued at start).
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Running } from "../../src/node/children.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { startDnsNode, type DnsNode } from "../support/dns-process.ts";
import { freePort } from "../support/ports.ts";
import { isoRedirectorToml, startRedirectorBox } from "../support/redirector.ts";

const ISO = new TextEncoder().encode("parrot iso bytes\n".repeat(1000));
const SUMS = `${createHash("sha256").update(ISO).digest("hex")}  parrot-7.0.iso\n`;

/** An origin or a complete mirror: /iso/SHA256SUMS and /iso/parrot-7.0.iso (GET and HEAD). */
const files = (request: Request) => {
  const path = new URL(request.url).pathname;
  const body = path === "/iso/SHA256SUMS" ? new TextEncoder().encode(SUMS) : path === "/iso/parrot-7.0.iso" ? ISO : undefined;
  if (!body) return new Response("not found\n", { status: 404 });
  return new Response(request.method === "HEAD" ? null : body, { headers: { "content-length": String(body.length) } });
};

let origin: Served;
let mirror: Served;
let dns: DnsNode;
let redirector: Running;
let url: string;
let port: number;

const startRedirector = async () => {
  ({ run: redirector, url } = await startRedirectorBox(dns.config, { port }));
};
const stats = async (query = "") => {
  const res = await fetch(`${url}/.well-known/cdn/mirrors/stats${query}`);
  return { status: res.status, body: (await res.json()) as { day: string; requests: Record<string, number>; files: { path: string; mirror: number; cdn: number }[]; not_listed: number; error?: string } };
};
const get = async (path: string) => {
  const res = await fetch(`${url}${path}`, { redirect: "manual" });
  await res.body?.cancel();
  return res.headers.get("location");
};

beforeAll(async () => {
  origin = await serveFetch(files);
  mirror = await serveFetch(files);
  port = await freePort();
  const down = await freePort();
  dns = await startDnsNode({
    extraToml: `
${isoRedirectorToml(origin.url, `stats_dir = "stats"\npublic_url = "http://127.0.0.1:${port}"\nscan_timeout_ms = 2000\nmax_failures = 1`)}
[[mirrors]]
name = "up-one"
url = "${mirror.url}"
lat = 51.5
lon = -0.1
country = "GB"

[[mirrors]]
name = "down-one"
url = "http://127.0.0.1:${down}/"
lat = 40.7
lon = -74.0
country = "US"
`,
  });
  await startRedirector();
}, 120_000);

afterAll(async () => {
  await redirector?.stop();
  await dns?.stop();
  await mirror?.close();
  await origin?.close();
});

it("counts each request by file, mirror and reason, keeps today's counts across a restart, and serves past days from stats_dir", async () => {
  for (let i = 0; i < 3; i++) expect(await get("/iso/parrot-7.0.iso")).toBe(`${mirror.url}/iso/parrot-7.0.iso`);
  await get("/iso/not-published.iso");
  const first = await stats();
  expect(first.status).toBe(200);
  expect(first.body.requests).toMatchObject({ mirror: 3, cdn: 1 });
  expect(first.body.files).toEqual([{ path: "/iso/parrot-7.0.iso", mirror: 3, cdn: 0, metalink: 0 }]);
  expect(first.body.not_listed).toBe(1);

  await redirector.stop(); // SIGTERM: today's document is written as it stops
  const file = join(dns.dir, "stats", `${first.body.day}.json`);
  expect(existsSync(file)).toBe(true);
  expect(JSON.parse(readFileSync(file, "utf8")).requests.mirror).toBe(3);
  await startRedirector();
  await get("/iso/parrot-7.0.iso");
  const after = await stats();
  expect(after.body.requests.mirror).toBe(4);
  expect(after.body.files[0]).toMatchObject({ path: "/iso/parrot-7.0.iso", mirror: 4 });

  expect((await stats("?day=2001-01-01")).status).toBe(404);
  expect((await stats("?day=../../etc/passwd")).status).toBe(400);
}, 90_000);

it("a DNS node's status page shows every mirror's health and freshness from [redirector] public_url", async () => {
  const res = await fetch(`http://127.0.0.1:${dns.httpPort}/status`);
  const html = await res.text();
  expect(res.status).toBe(200);
  expect(html).toContain("<h2>Mirrors</h2>");
  expect(html).toMatch(/data-mirror="up-one" data-state="up"[\s\S]*?1 of 1 up to date/);
  expect(html).toMatch(/data-mirror="down-one" data-state="down"[\s\S]*?down: 1 failures/);
  const json = (await (await fetch(`http://127.0.0.1:${dns.httpPort}/status.json`)).json()) as { mirrors?: { mirrors: { name: string; up: boolean }[] } };
  expect(json.mirrors?.mirrors.map((m) => [m.name, m.up])).toEqual([["up-one", true], ["down-one", false]]);
}, 30_000);
