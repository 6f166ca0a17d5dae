import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRedirector, type RedirectorHost } from "./redirector-host.ts";
import { serveFetch, type Served } from "./serve-fetch.ts";

const ISO = "parrot iso bytes";
const files: Record<string, string> = {
  "/iso/SHA256SUMS": `${createHash("sha256").update(ISO).digest("hex")}  parrot.iso\n`,
  "/iso/parrot.iso": ISO,
};
const serveFiles = (request: Request) => {
  const body = files[new URL(request.url).pathname];
  return body === undefined ? new Response("no", { status: 404 }) : new Response(request.method === "HEAD" ? null : body, { headers: { "content-length": String(body.length) } });
};

describe("the redirector's Node host", () => {
  let dir: string;
  let origin: Served;
  let a: Served;
  let b: Served;
  let host: RedirectorHost;
  const config = (mirrors: string) => `[admin]
token = "host-test-token-0123456789"

[geoip]
city = "${resolve("test/fixtures/GeoIP2-City-Test.mmdb")}"

[redirector]
origin = "${origin.url}"
cdn = "http://127.0.0.1:9/"
paths = ["/iso/**"]
indexes = [ { path = "/iso/SHA256SUMS", kind = "sha256sums" } ]
networks = [ { cidr = "127.0.0.1/32", locate_as = "216.160.83.56" } ]
scan_interval_ms = 3600000
${mirrors}`;
  const mirror = (name: string, url: string, lat: number, lon: number, enabled = true) => `\n[[mirrors]]\nname = "${name}"\nurl = "${url}"\nlat = ${lat}\nlon = ${lon}\nenabled = ${enabled}\n`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "parrot-redirector-host-"));
    [origin, a, b] = await Promise.all([serveFetch(serveFiles), serveFetch(serveFiles), serveFetch(serveFiles)]);
    // a: Seattle (near the client's stand-in, Milton WA), b: London.
    writeFileSync(join(dir, "cdn.toml"), config(mirror("a", a.url, 47.6, -122.3) + mirror("b", b.url, 51.5, -0.1)));
    host = await runRedirector({ configPath: join(dir, "cdn.toml"), port: 0, log: () => {} });
  });
  afterAll(async () => {
    await host?.close();
    await Promise.all([origin, a, b].map((s) => s?.close()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const where = async (headers: Record<string, string> = {}) => {
    const res = await fetch(`${host.url}/iso/parrot.iso`, { redirect: "manual", headers });
    await res.body?.cancel();
    return res.headers.get("x-mirror");
  };

  it("scanned before ready; locates the connection's address, not X-Forwarded-For", async () => {
    expect(await where()).toBe("a");
    // A client claiming a London address is still where its connection is.
    expect(await where({ "x-forwarded-for": "81.2.69.142" })).toBe("a");
  });

  it("reloads the mirror list; a bad file keeps the running one", async () => {
    writeFileSync(join(dir, "cdn.toml"), config(mirror("a", a.url, 47.6, -122.3, false) + mirror("b", b.url, 51.5, -0.1)));
    await host.reload();
    expect(await where()).toBe("b");
    writeFileSync(join(dir, "cdn.toml"), config(mirror("a", a.url, 47.6, -122.3) + `\n[[mirrors]]\nname = "c"\nurl = "http://mirror.test/"\n`));
    await host.reload();
    expect(await where()).toBe("b");
  });

  it("runs a scan round on POST /.well-known/cdn/scan with the admin token only", async () => {
    expect((await fetch(`${host.url}/.well-known/cdn/scan`, { method: "POST" })).status).toBe(401);
    const res = await fetch(`${host.url}/.well-known/cdn/scan`, { method: "POST", headers: { authorization: "Bearer host-test-token-0123456789" } });
    const status = (await res.json()) as { files: number; mirrors: { name: string; present: number }[] };
    expect(status.files).toBe(1);
    expect(status.mirrors.find((m) => m.name === "b")!.present).toBe(1);
  });
});
