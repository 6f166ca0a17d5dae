/**
 * The mirror redirector with real clients: five mirrors on loopback (nginx serving copies of the origin: complete,
 * ISOs only, lagging, one with a wrong-size ISO, one down), the CDN (a bare-workerd edge in front of the origin),
 * the redirector (`scripts/redirector.ts`) with the GeoIP test data. Clients get a country from their source address
 * (curl --interface, aria2c --interface): the redirector locates the connection's address, through [redirector]
 * networks that place 127.0.0.x where a public test address is. Scans run only when the test asks (POST scan).
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { AptClient, AptRepo, type Package } from "../support/apt-repo.ts";
import { startNginxOrigin, type NginxOrigin } from "../support/nginx-origin.ts";
import { freePort } from "../support/ports.ts";
import { startRedirectorBox } from "../support/redirector.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const TOKEN = "redirector-e2e-token-0123";
const hello1: Package = { name: "parrot-hello", version: "1.0" };
const hello2: Package = { name: "parrot-hello", version: "2.0" };
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Client source addresses and the public test address each is located as (GeoIP2-City-Test). */
const GB = "127.0.0.21"; // 81.2.69.142 London
const US = "127.0.0.22"; // 216.160.83.56 Milton, WA
const SE = "127.0.0.23"; // 89.160.20.112 Linköping, AS29518

describe("mirror redirector", () => {
  let dir: string;
  let repo: AptRepo;
  let origin: NginxOrigin;
  const mirrors: Record<string, NginxOrigin> = {};
  let gbProxy: TcpProxy;
  let edge: Running;
  let edgeUrl: string;
  let redirector: Running;
  let url: string;
  let iso70: Buffer;
  let iso71: Buffer;

  const writeSums = () => {
    const isoDir = join(repo.root, "iso");
    const names = readdirSync(isoDir).filter((n) => n.endsWith(".iso")).sort();
    writeFileSync(join(isoDir, "SHA256SUMS"), names.map((n) => `${sha256(readFileSync(join(isoDir, n)))}  ${n}\n`).join(""));
  };
  const copyTo = (name: string, filter: (path: string) => boolean) => {
    const root = join(dir, "mirrors", name);
    cpSync(repo.root, root, { recursive: true, filter: (src) => !src.includes("/gnupg") && filter(src.slice(repo.root.length) || "/") });
    return root;
  };
  const scan = async () => {
    const res = await fetch(`${url}/.well-known/cdn/scan`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    return (await res.json()) as { mirrors: { name: string; up: boolean }[] };
  };
  /** curl -L from a client address: where it landed and the SHA-256 of what it got. */
  const curl = async (from: string, path: string) => {
    const out = join(dir, `curl-${randomBytes(4).toString("hex")}`);
    const { stdout } = await run("curl", ["-s", "-f", "-L", "--interface", from, "-o", out, "-w", "%{url_effective}", `${url}${path}`], { timeout: 60_000 });
    const sha = sha256(readFileSync(out));
    rmSync(out);
    return { landed: stdout, sha };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "parrot-redirector-e2e-"));
    repo = new AptRepo(join(dir, "origin"));
    repo.publish([hello1]);
    mkdirSync(join(repo.root, "iso"));
    iso70 = randomBytes(8 * MiB);
    writeFileSync(join(repo.root, "iso/parrot-7.0.iso"), iso70);
    writeSums();
    // The lagging mirror synced before 7.1 and hello 2.0 were published.
    const lagging = copyTo("us-east", () => true);
    iso71 = randomBytes(MiB);
    writeFileSync(join(repo.root, "iso/parrot-7.1.iso"), iso71);
    writeSums();
    repo.publish([hello1, hello2]);
    const complete = copyTo("gb", () => true);
    const isosOnly = copyTo("se", (p) => p === "/" || p.startsWith("/iso"));
    const wrong = copyTo("us-west", () => true);
    truncateSync(join(wrong, "iso/parrot-7.0.iso"), 8 * MiB - 4096);

    origin = await startNginxOrigin(repo.root, join(dir, "nginx-origin"));
    for (const [name, root] of Object.entries({ gb: complete, se: isosOnly, "us-west": wrong, "us-east": lagging })) {
      mirrors[name] = await startNginxOrigin(root, join(dir, `nginx-${name}`));
    }
    gbProxy = await startTcpProxy(Number(new URL(mirrors.gb!.url).port));
    const downPort = await freePort();

    writeFileSync(join(dir, "edge.toml"), `[edge]\nname = "cdn-edge"\norigin = "${origin.url}"\naccess_log = false\n`);
    edge = await startNodeScript("scripts/edge.ts", ["--config", join(dir, "edge.toml"), "--port", "0", "--store", join(dir, "store")], /edge ready: (\S+)/, 60_000);
    edgeUrl = edge.match[1]!;

    const arch = (await run("dpkg", ["--print-architecture"])).stdout.trim();
    const fixtures = resolve("test/fixtures");
    const mirror = (name: string, u: string, lat: number, lon: number, country: string, extra = "") =>
      `[[mirrors]]\nname = "${name}"\nurl = "${u}"\nlat = ${lat}\nlon = ${lon}\ncountry = "${country}"\n${extra}\n`;
    writeFileSync(
      join(dir, "cdn.toml"),
      `[admin]
token = "${TOKEN}"

[geoip]
city = "${fixtures}/GeoIP2-City-Test.mmdb"
asn = "${fixtures}/GeoLite2-ASN-Test.mmdb"

[redirector]
origin = "${origin.url}"
cdn = "${edgeUrl}"
paths = ["/iso/**", "/debian/**"]
indexes = [ { path = "/iso/SHA256SUMS", kind = "sha256sums" }, { path = "/debian/dists/parrot/main/binary-${arch}/Packages", kind = "packages" } ]
apt_mirrorlist = "/debian/mirrors.txt"
apt_archive = "/debian/"
max_failures = 2
scan_interval_ms = 3600000
scan_timeout_ms = 5000
networks = [
  { cidr = "${GB}/32", locate_as = "81.2.69.142" },
  { cidr = "${US}/32", locate_as = "216.160.83.56" },
  { cidr = "${SE}/32", locate_as = "89.160.20.112" },
  { cidr = "127.0.0.1/32", locate_as = "81.2.69.142" },
]

${mirror("gb", `http://127.0.0.1:${gbProxy.port}/`, 51.51, -0.13, "GB")}
${mirror("se-isos", mirrors.se!.url, 59.33, 18.07, "SE", 'paths = ["/iso/**"]\nasn = 29518')}
${mirror("us-west", mirrors["us-west"]!.url, 47.61, -122.33, "US")}
${mirror("us-east", mirrors["us-east"]!.url, 40.71, -74.01, "US")}
${mirror("jp-down", `http://127.0.0.1:${downPort}/`, 35.68, 139.69, "JP")}
`,
    );
    ({ run: redirector, url } = await startRedirectorBox(join(dir, "cdn.toml")));
  }, 180_000);

  afterAll(async () => {
    await redirector?.stop();
    await edge?.stop();
    await gbProxy?.close();
    for (const m of Object.values(mirrors)) await m.stop();
    await origin?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("curl -L from three countries lands on the nearest mirror with the exact file", async () => {
    const gb = mirrors.gb!; // behind the proxy: the redirect names the proxy's port
    const gbBase = `http://127.0.0.1:${gbProxy.port}`;
    expect(await curl(GB, "/iso/parrot-7.0.iso")).toEqual({ landed: `${gbBase}/iso/parrot-7.0.iso`, sha: sha256(iso70) });
    // Sweden: the ISO-only mirror in the client's AS; a package goes to the nearest full mirror.
    expect(await curl(SE, "/iso/parrot-7.1.iso")).toEqual({ landed: `${mirrors.se!.url}/iso/parrot-7.1.iso`, sha: sha256(iso71) });
    const deb = `/debian/${repo.poolPath(hello2)}`;
    expect((await curl(SE, deb)).landed).toBe(`${gbBase}${deb}`);
    // The US: Seattle holds a wrong-size 7.0 (New York serves it) and the only US copy of 7.1 (New York lags).
    expect(await curl(US, "/iso/parrot-7.0.iso")).toEqual({ landed: `${mirrors["us-east"]!.url}/iso/parrot-7.0.iso`, sha: sha256(iso70) });
    expect(await curl(US, "/iso/parrot-7.1.iso")).toEqual({ landed: `${mirrors["us-west"]!.url}/iso/parrot-7.1.iso`, sha: sha256(iso71) });
    expect(gb.requests().some(([m, p]) => m === "GET" && p === "/iso/parrot-7.0.iso")).toBe(true);
    // The down mirror is out; the redirect carries the alternatives and the digest.
    const head = await run("curl", ["-s", "-D", "-", "-o", "/dev/null", "--interface", US, `${url}/iso/parrot-7.0.iso`]);
    expect(head.stdout).toMatch(/^HTTP\/1\.1 302/);
    expect(head.stdout).toContain(`repr-digest: sha-256=:${createHash("sha256").update(iso70).digest("base64")}:`);
    expect(head.stdout).toMatch(/link: <http:\/\/127\.0\.0\.1:\d+\/iso\/parrot-7\.0\.iso>; rel=duplicate; pri=1; geo=us, /);
    expect(head.stdout).not.toContain("jp-down");
    const status = await (await fetch(`${url}/.well-known/cdn/mirrors`)).json() as { mirrors: { name: string; up: boolean }[] };
    expect(status.mirrors.find((m) => m.name === "jp-down")!.up).toBe(false);
  }, 60_000);

  it("a file newer than every mirror is served by the CDN; InRelease is never redirected", async () => {
    const rc = randomBytes(512 * 1024);
    writeFileSync(join(repo.root, "iso/parrot-7.2-rc1.iso"), rc);
    writeSums();
    await scan();
    const got = await curl(GB, "/iso/parrot-7.2-rc1.iso");
    expect(got.landed).toBe(`${edgeUrl}/iso/parrot-7.2-rc1.iso`);
    expect(got.sha).toBe(sha256(rc));
    const inrelease = await run("curl", ["-s", "-i", "--interface", GB, `${url}/debian/dists/parrot/InRelease`]);
    expect(inrelease.stdout).toMatch(/^HTTP\/1\.1 200/);
    expect(inrelease.stdout).toContain("x-mirror: cdn");
    expect(inrelease.stdout).toContain(readFileSync(join(repo.archive, "dists/parrot/InRelease"), "utf8"));
  }, 60_000);

  // Every mirror here is on 127.0.0.1: aria2c counts them as one server, hence --max-connection-per-server=4 (it
  // still spreads its connections over the Metalink's URLs, 1 MiB segments each, attached at once).
  it("aria2c downloads an ISO from several mirrors through the Metalink and checks its hash", async () => {
    const out = join(dir, "aria2");
    mkdirSync(out);
    const before = Object.fromEntries(Object.entries(mirrors).map(([n, m]) => [n, m.requests().length]));
    const r = await run(
      "aria2c",
      ["--interface", US, "--dir", out, "--split=4", "--min-split-size=1M", "--max-connection-per-server=4", "--allow-overwrite=true", "--summary-interval=0", "--console-log-level=notice", "-l", join(dir, "aria2.log"), `${url}/iso/parrot-7.0.iso?metalink`],
      { timeout: 120_000 },
    ).catch((e: { message: string; stdout?: string; stderr?: string }) => {
      throw new Error(`${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}\n${readFileSync(join(dir, "aria2.log"), "utf8").split("\n").slice(-60).join("\n")}`);
    });
    expect(readdirSync(out)).toContain("parrot-7.0.iso");
    expect(sha256(readFileSync(join(out, "parrot-7.0.iso")))).toBe(sha256(iso70));
    expect(r.stdout).toMatch(/Download complete/);
    // aria2c checked the Metalink's SHA-256 over what it assembled from the mirrors.
    expect(r.stdout).toMatch(/Verification finished successfully\. file=\S*\/parrot-7\.0\.iso\s*$/m);
    const ranged = Object.entries(mirrors).filter(([n, m]) =>
      m.requests().slice(before[n]).some(([method, p, , , range]) => method === "GET" && p === "/iso/parrot-7.0.iso" && range.startsWith("bytes=")),
    );
    const seen = Object.entries(mirrors).flatMap(([n, m]) => m.requests().slice(before[n]).map((q) => `${n} ${q.join(" ")}`));
    expect(ranged.length, seen.join("\n")).toBeGreaterThanOrEqual(2);
    // The wrong-size copy was never offered.
    expect(mirrors["us-west"]!.requests().slice(before["us-west"]).filter(([m, p]) => m === "GET" && p === "/iso/parrot-7.0.iso")).toEqual([]);
  }, 120_000);

  it("apt-get update and download through mirror+http: indexes from the CDN, packages from the mirrors", async () => {
    const before = Object.fromEntries(Object.entries(mirrors).map(([n, m]) => [n, m.requests().length]));
    const client = new AptClient(join(dir, "apt"), `mirror+${url}/debian/mirrors.txt`, repo.keyring);
    const update = await client.aptGet(["update"]);
    expect(update).not.toMatch(/Hash Sum mismatch|Err:|W:/);
    const downloads = join(dir, "apt-downloads");
    mkdirSync(downloads);
    await client.aptGet(["download", "parrot-hello"], downloads);
    expect(sha256(readFileSync(join(downloads, "parrot-hello_2.0_all.deb")))).toBe(repo.sha256(hello2));
    const asked = Object.entries(mirrors).flatMap(([n, m]) => m.requests().slice(before[n]).map(([method, p]) => `${n} ${method} ${p}`));
    expect(asked.filter((a) => a.includes("/dists/"))).toEqual([]);
    expect(asked).toContain(`gb GET /debian/${repo.poolPath(hello2)}`);
  }, 120_000);

  it("a mirror that starts failing is left out after max_failures scan answers, and back after a good scan", async () => {
    const gbBase = `http://127.0.0.1:${gbProxy.port}`;
    await gbProxy.cut("close");
    let up = true;
    for (let round = 0; round < 3 && up; round++) up = (await scan()).mirrors.find((m) => m.name === "gb")!.up;
    expect(up).toBe(false);
    const away = await curl(GB, "/iso/parrot-7.0.iso");
    expect(away.landed).not.toContain(gbBase);
    expect(away.sha).toBe(sha256(iso70));
    await gbProxy.restore();
    expect((await scan()).mirrors.find((m) => m.name === "gb")!.up).toBe(true);
    expect((await curl(GB, "/iso/parrot-7.0.iso")).landed).toBe(`${gbBase}/iso/parrot-7.0.iso`);
  }, 60_000);
});
