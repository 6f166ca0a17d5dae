/**
 * The redirector learning a mirror's files from its rsync module (Debian's rsync: a daemon on loopback serves the
 * mirror's folder, the redirector runs `rsync --list-only`): one listing checks every file, no HEAD reaches the
 * mirror's web server; with the daemon gone, the round falls back to HEAD over HTTP.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Running } from "../../src/node/children.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { freePort } from "../support/ports.ts";
import { isoRedirectorToml, startRedirectorBox } from "../support/redirector.ts";

const TOKEN = "rsync-e2e-token-0123456789";
const A = new TextEncoder().encode("iso a\n".repeat(500));
const B = new TextEncoder().encode("iso b\n".repeat(700));
const sum = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

let dir: string;
let origin: Served;
let mirrorHttp: Served;
let rsyncd: ChildProcess | undefined;
let redirector: Running;
let url: string;
const heads: string[] = [];

/** Serves files from `root` over HTTP (GET and HEAD), noting HEAD requests. */
const filesFrom = (root: string, note?: string[]) => (request: Request) => {
  const path = new URL(request.url).pathname;
  if (request.method === "HEAD") note?.push(path);
  let body: Uint8Array;
  try {
    body = readFileSync(join(root, decodeURIComponent(path)));
  } catch {
    return new Response("not found\n", { status: 404 });
  }
  return new Response(request.method === "HEAD" ? null : body, { headers: { "content-length": String(body.length) } });
};

async function startRsyncd(root: string, port: number): Promise<ChildProcess> {
  const conf = join(dir, "rsyncd.conf");
  // As root the daemon would become nobody, who cannot read a private temporary folder: it stays this user.
  writeFileSync(conf, `use chroot = no\nuid = ${process.getuid!()}\ngid = ${process.getgid!()}\npid file = ${join(dir, "rsyncd.pid")}\n[mirror]\npath = ${root}\nread only = yes\n`);
  const child = spawn("rsync", ["--daemon", "--no-detach", "--address=127.0.0.1", `--port=${port}`, `--config=${conf}`, `--log-file=${join(dir, "rsyncd.log")}`], { stdio: "ignore" });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const probe = spawn("rsync", ["--list-only", "--no-motd", `rsync://127.0.0.1:${port}/`], { stdio: "ignore" });
    if ((await new Promise((r) => probe.on("close", r))) === 0) return child;
    if (Date.now() > deadline) throw new Error("rsync daemon did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "parrot-rsync-e2e-"));
  const originRoot = join(dir, "origin");
  const mirrorRoot = join(dir, "mirror");
  mkdirSync(join(originRoot, "iso"), { recursive: true });
  mkdirSync(join(mirrorRoot, "iso"), { recursive: true });
  writeFileSync(join(originRoot, "iso/a.iso"), A);
  writeFileSync(join(originRoot, "iso/b.iso"), B);
  writeFileSync(join(originRoot, "iso/SHA256SUMS"), `${sum(A)}  a.iso\n${sum(B)}  b.iso\n`);
  writeFileSync(join(mirrorRoot, "iso/a.iso"), A); // the mirror has not synced b.iso yet
  origin = await serveFetch(filesFrom(originRoot));
  mirrorHttp = await serveFetch(filesFrom(mirrorRoot, heads));
  const rsyncPort = await freePort();
  rsyncd = await startRsyncd(mirrorRoot, rsyncPort);
  writeFileSync(
    join(dir, "cdn.toml"),
    `[admin]
token = "${TOKEN}"

${isoRedirectorToml(origin.url, "scan_timeout_ms = 2000")}
[[mirrors]]
name = "m"
url = "${mirrorHttp.url}"
rsync = "rsync://127.0.0.1:${rsyncPort}/mirror/"
lat = 51.5
lon = -0.1
`,
  );
  ({ run: redirector, url } = await startRedirectorBox(join(dir, "cdn.toml")));
}, 90_000);

afterAll(async () => {
  await redirector?.stop();
  rsyncd?.kill();
  await mirrorHttp?.close();
  await origin?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const location = async (path: string) => {
  const res = await fetch(`${url}${path}`, { redirect: "manual" });
  await res.body?.cancel();
  return res.headers.get("location");
};

it("one rsync listing checks every file: the mirror gets what it has, the CDN the rest, and no HEAD reaches the mirror", async () => {
  expect(await location("/iso/a.iso")).toBe(`${mirrorHttp.url}/iso/a.iso`);
  expect(await location("/iso/b.iso")).toBe(`${origin.url}/iso/b.iso`);
  expect(heads).toEqual([]);
  expect(redirector.output()).toMatch(/"redirector":"rsync","mirror":"m","present":1,"absent":1,"wrong":0/);
});

it("with the rsync daemon gone, the round falls back to HEAD over HTTP", async () => {
  rsyncd!.kill();
  await new Promise((r) => rsyncd!.once("exit", r));
  rsyncd = undefined;
  const res = await fetch(`${url}/.well-known/cdn/scan`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  expect(heads.sort()).toEqual(["/iso/a.iso", "/iso/b.iso"]);
  expect(redirector.output()).toMatch(/"redirector":"rsync","mirror":"m","error":"rsync rsync:\/\/127\.0\.0\.1:\d+\/mirror\/: exit/);
  expect(await location("/iso/a.iso")).toBe(`${mirrorHttp.url}/iso/a.iso`);
});
