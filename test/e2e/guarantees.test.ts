/**
 * What the edge guarantees (docs/edge.md, "What the edge guarantees"), each held by a bounded test against a real edge box
 * on bare workerd and scripted origins: clients cannot grow shared state, fill the store past its bounds, poison or
 * corrupt the cache, or turn their own failures into the origin's; every byte served is the byte stored.
 * (Connections spread over processes and a dying store process: test/e2e/workerd-processes.test.ts.)
 */
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { connect } from "node:net";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @ts-expect-error: the package ships no types
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cacheUrl } from "../../src/contracts/store.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { startEdgeWorkerd, type RunningWorkerdEdge } from "../../src/node/workerd-host.ts";
import { keyHash } from "../../src/store/format.ts";
import { storeBytes } from "../../src/store/scan.ts";
import { pattern, ScriptedOrigin } from "../support/scripted-origin.ts";

const TOKEN = "guarantees-test-token-0123456789";
const MB = 1024 * 1024;
const primary = new ScriptedOrigin();
const backup = new ScriptedOrigin();
let primaryServer: Served;
let backupServer: Served;
let dir: string;
let storeDir: string;
let edge: RunningWorkerdEdge;
let port = 0;

function configText(): string {
  return `[edge]
name = "g"
origin_timeout_ms = 5000
origin_max_fails = 2
origin_fail_timeout = 60
origins = [ { url = "${primaryServer.url}" }, { url = "${backupServer.url}", priority = 1 } ]
max_object_bytes = ${4 * MB}
access_log = false
[admin]
token = "${TOKEN}"
metrics_public = true
[[rules]]
path = "/static/**"
force_ttl = 600
`;
}

async function start() {
  edge = await startEdgeWorkerd({ configText: configText(), storeDir, port, log: () => {} });
  port = Number(new URL(edge.url).port);
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${edge.url}/.well-known/cdn/metrics`)).text();
  const fam = (parsePrometheusTextFormat(text) as { name: string; metrics: { value: string }[] }[]).find((f) => f.name === name);
  return Number(fam?.metrics[0]?.value ?? NaN);
}

/** Waits (bounded) until the store's files stop changing. */
async function settle() {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    const now = storeBytes(storeDir);
    if (now === last) return;
    last = now;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The store file of a URL's entry (the newest write of its key). */
async function fileOf(path: string): Promise<string> {
  const key = new URL(path, edge.url);
  const hash = await keyHash("", cacheUrl(key.host + key.pathname + key.search));
  const sub = join(storeDir, hash.slice(0, 2));
  const names = readdirSync(sub).filter((n) => n.startsWith(hash)).sort();
  return join(sub, names[names.length - 1]!);
}

beforeAll(async () => {
  primaryServer = await serveFetch(primary.handle);
  backupServer = await serveFetch(backup.handle);
  dir = mkdtempSync(join(tmpdir(), "parrot-guarantees-"));
  storeDir = join(dir, "store");
  await start();
}, 60_000);

afterAll(async () => {
  await edge?.stop();
  await Promise.allSettled([primaryServer?.close(), backupServer?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("what the edge guarantees", () => {
  it("a purge is acknowledged only when it is durable: a store that cannot write refuses it", async () => {
    // Make the purge record's folder a file: the store cannot write the record (as on a full or failing disk).
    const hash = await keyHash("", cacheUrl("\u0001purge-log"));
    const blocker = join(storeDir, hash.slice(0, 2));
    expect(existsSync(blocker)).toBe(false); // nothing else was stored yet
    writeFileSync(blocker, "not a folder");
    const purge = () =>
      fetch(`${edge.url}/.well-known/cdn/purge`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ tags: ["news"], fanout: false }),
      });
    const refused = await purge();
    const body = await refused.text();
    expect(refused.status).not.toBe(200);
    expect(body).toMatch(/did not keep the purge record/);
    rmSync(blocker);
    const accepted = await purge();
    expect(accepted.status).toBe(200);
    await accepted.text();
  });

  it("client invalidations (POST) do not grow the shared purge log", async () => {
    const before = await metric("parrot_edge_purge_log_bytes");
    primary.set("/flood", { status: 200, body: "ok" }); // any path answers 200 to the POSTs below
    const long = "x".repeat(8 * 1024);
    for (let i = 0; i < 200; i++) {
      const path = `/flood/${i}/${long}`;
      primary.set(path, { status: 200, body: "ok" });
      const r = await fetch(`${edge.url}${path}`, { method: "POST", body: "change" });
      expect(r.status).toBe(200);
      await r.text();
    }
    await new Promise((r) => setTimeout(r, 1100)); // a sync of the shared record is due
    await (await fetch(`${edge.url}/after-flood`)).text();
    expect(await metric("parrot_edge_purge_log_bytes")).toBe(before);
  });

  it("a body without Content-Length larger than max_object_bytes leaves no file and is not said to be stored", async () => {
    const bytesBefore = storeBytes(storeDir);
    const big = new Uint8Array(6 * MB).fill(0x61);
    const chunked = await serveFetch(() => new Response(new Response(big).body, { headers: { "cache-control": "max-age=600" } }));
    primary.set("/oversize", { status: 502 });
    // A dedicated origin for this path: the scripted one always sends a length.
    await edge.stop();
    const text = configText().replace(/origins = \[.*\]/, `origin = "${chunked.url}"`);
    edge = await startEdgeWorkerd({ configText: text, storeDir, port, log: () => {} });
    try {
      const res = await fetch(`${edge.url}/oversize`);
      expect((await res.arrayBuffer()).byteLength).toBe(big.byteLength); // the client gets it all, uncached
      expect(res.headers.get("cache-status")).not.toMatch(/stored/);
      await settle();
      expect(storeBytes(storeDir) - bytesBefore).toBeLessThan(64 * 1024);
      expect((await fetch(`${edge.url}/oversize`)).headers.get("x-cache-status")).toBe("MISS");
    } finally {
      await edge.stop();
      await chunked.close();
      await start();
    }
  }, 60_000);

  it("a flipped byte in a stored body or head is never served: recovery or the read drops the entry", async () => {
    const small = "/static/small.txt";
    const large = "/static/large.bin"; // 3 blocks of 1 MiB, too big for the memory tier: checked as it streams
    const head = "/static/head.txt";
    const LARGE = 3 * MB + 7;
    // Not compressible types: one entry per URL (a text type would be a Vary marker and variants).
    const bin = { "cache-control": "max-age=600", "content-type": "application/octet-stream" };
    primary.set(small, { headers: bin, body: "the stored bytes\n".repeat(100) });
    primary.set(large, { headers: bin, size: LARGE });
    primary.set(head, { headers: bin, body: "head test\n" });
    for (const p of [small, large, head]) await (await fetch(`${edge.url}${p}`)).arrayBuffer();
    await settle();
    for (const p of [small, large, head]) expect((await fetch(`${edge.url}${p}`)).headers.get("x-cache-status")).toBe("HIT");
    const files = { small: await fileOf(small), large: await fileOf(large), head: await fileOf(head) };
    await edge.stop();
    const flip = (file: string, at: number) => {
      const fd = openSync(file, "r+");
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, at);
      b[0]! ^= 0x20;
      writeSync(fd, b, 0, 1, at);
      closeSync(fd);
    };
    const headLen = (file: string) => JSON.parse(readTrailer(file)).h as number;
    flip(files.small, headLen(files.small) + 700); // inside the body
    flip(files.large, headLen(files.large) + 2 * MB + 5); // inside the third block
    flip(files.head, 20); // inside the head's JSON
    await start();
    expect(edge.recovered.removed).toBeGreaterThanOrEqual(1); // the damaged head goes at recovery
    const corruptBefore = await metric("parrot_edge_store_corrupt_total");
    // A small entry is checked whole before the answer: the client gets the origin's bytes (MISS).
    const s = await fetch(`${edge.url}${small}`);
    expect([s.headers.get("x-cache-status"), await s.text()]).toEqual(["MISS", "the stored bytes\n".repeat(100)]);
    // A large one is checked block by block: the damaged block is never sent, the answer ends short.
    const l = await fetch(`${edge.url}${large}`);
    expect(l.headers.get("x-cache-status")).toBe("HIT");
    await expect(l.arrayBuffer()).rejects.toThrow();
    const again = await fetch(`${edge.url}${large}`);
    expect(again.headers.get("x-cache-status")).toBe("MISS");
    expect(new Uint8Array(await again.arrayBuffer())).toEqual(pattern(LARGE));
    const h = await fetch(`${edge.url}${head}`);
    expect([h.headers.get("x-cache-status"), await h.text()]).toEqual(["MISS", "head test\n"]);
    expect((await metric("parrot_edge_store_corrupt_total")) - corruptBefore).toBe(2);
  }, 60_000);

  it("client forwarding and override headers never reach the origin", async () => {
    primary.set("/headers", { headers: { "cache-control": "max-age=600" }, body: "h" });
    await (
      await fetch(`${edge.url}/headers`, {
        headers: {
          "x-forwarded-host": "evil.example", "x-forwarded-scheme": "http", "x-host": "evil.example", "x-original-host": "evil.example",
          "x-forwarded-server": "evil", "x-http-method": "DELETE", "x-method-override": "DELETE", "x-http-method-override": "DELETE",
          "x-original-url": "/admin", "x-forwarded-for": "6.6.6.6", forwarded: "for=6.6.6.6",
        },
      })
    ).text();
    const seen = primary.lastRequest("/headers")!;
    for (const name of ["x-forwarded-scheme", "x-host", "x-original-host", "x-forwarded-server", "x-http-method", "x-method-override", "x-http-method-override", "x-original-url", "forwarded"]) {
      expect(seen[name], name).toBeUndefined();
    }
    expect(seen["x-forwarded-host"]).toBe(`127.0.0.1:${port}`);
    expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
  });

  it("aborted uploads are the client's failure: the primary origin stays in service", async () => {
    primary.set("/upload", { status: 200, body: "stored", delayMs: 200 });
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((done) => {
        const req = httpRequest(`${edge.url}/upload`, { method: "POST", headers: { "content-length": "1000000" } });
        req.on("error", () => done());
        req.write(Buffer.alloc(10_000));
        setTimeout(() => {
          req.destroy();
          done();
        }, 100);
      });
    }
    await new Promise((r) => setTimeout(r, 300));
    primary.set("/after-upload", { headers: { "cache-control": "no-store" }, body: "from primary" });
    backup.set("/after-upload", { headers: { "cache-control": "no-store" }, body: "from backup" });
    expect(await (await fetch(`${edge.url}/after-upload`)).text()).toBe("from primary");
    // (What the origin sees of a cut or malformed upload, and the client's 400: test/e2e/uploads.test.ts.)
  });

  it("a force_ttl rule for /static/** does not store /static/..%2faccount (the origin's /account)", async () => {
    // No Cache-Control at all: only the rule's force_ttl could make these storable.
    primary.set("/static/plain.txt", { body: "public" });
    primary.set("/static/..%2faccount", { body: "my account" });
    // The rule holds where it should: a plain /static/ path is stored by force_ttl alone.
    const plain = [];
    for (let i = 0; i < 2; i++) plain.push((await fetch(`${edge.url}/static/plain.txt`)).headers.get("x-cache-status"));
    expect(plain).toEqual(["MISS", "HIT"]);
    // The encoded ../ resolves (at an origin that decodes %2F first) to /account, which no rule covers: never stored.
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`${edge.url}/static/..%2faccount`);
      expect([r.headers.get("x-cache-status"), await r.text()]).toEqual(["MISS", "my account"]);
    }
    expect(primary.hitsOf("/static/..%2faccount")).toBe(2);
  });

  it("entries tagged constructor, __proto__ or toString are cached like any other", async () => {
    for (const tag of ["constructor", "__proto__", "toString"]) {
      primary.set(`/tagged/${tag}`, { headers: { "cache-control": "max-age=600", "cache-tag": tag }, body: tag });
      await (await fetch(`${edge.url}/tagged/${tag}`)).text();
      expect((await fetch(`${edge.url}/tagged/${tag}`)).headers.get("x-cache-status")).toBe("HIT");
    }
  });

  it("input errors are the client's: two Host headers 400, TRACE 405; CONNECT never reaches the worker or an origin", async () => {
    expect(await rawRequest("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n")).toMatch(/^HTTP\/1\.1 400/);
    expect(await rawRequest(`TRACE / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 405/);
    // workerd answers CONNECT itself: 500 without a connect() handler, and "200 OK" before one would run (workerd
    // 1.20261102, global-scope.c++ accepts the tunnel first), so the worker cannot answer 405; the front door does.
    const hitsBefore = primary.hitsOf("example.org:443");
    expect(await rawRequest("CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")).not.toMatch(/^HTTP\/1\.1 2/);
    expect(primary.hitsOf("example.org:443")).toBe(hitsBefore);
  });
});

/** The trailer's JSON of a store file (its last 192 bytes). */
function readTrailer(file: string): string {
  const size = statSync(file).size;
  const fd = openSync(file, "r");
  const b = Buffer.alloc(192);
  readSync(fd, b, 0, 192, size - 192);
  closeSync(fd);
  return b.toString("utf8").split("\n")[0]!.trim();
}

/** Sends raw bytes to the edge; the status line of the answer (or "closed"). */
function rawRequest(text: string): Promise<string> {
  return new Promise((done) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(text));
    let got = "";
    socket.setTimeout(5_000, () => socket.destroy());
    socket.on("data", (c) => {
      got += c.toString("latin1");
      if (got.includes("\r\n")) {
        done(got.split("\r\n")[0]!);
        socket.destroy();
      }
    });
    socket.on("close", () => done(got.split("\r\n")[0] || "closed"));
    socket.on("error", () => undefined);
  });
}
