/**
 * A real apt client through the edge (bare workerd) with the archive rules of the shipped cdn.toml: a signed
 * archive built with dpkg-deb, apt-ftparchive and gpg, served by nginx as a static mirror; `apt-get update` and
 * `apt-get download` with a private sources list, state and trust; the archive published again (new InRelease, new
 * indexes) and `apt-get update` again through the same edge: no Hash Sum mismatch, the new packages are seen. A large
 * package (over slice_threshold_bytes) comes through slices, checked by apt's own SHA256. Also the demo origin's
 * archive (npm start) through the same rules.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoOrigin } from "../../src/demo-origin/origin.ts";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { AptClient, AptRepo, type Package } from "../support/apt-repo.ts";
import { startNginxOrigin, type NginxOrigin } from "../support/nginx-origin.ts";

const MiB = 1024 * 1024;
const hello1: Package = { name: "parrot-hello", version: "1.0" };
const hello2: Package = { name: "parrot-hello", version: "2.0" };
const big: Package = { name: "parrot-firmware", version: "1.0", payload: 40 * MiB };
const extra: Package = { name: "parrot-extra", version: "0.1" };

/** The shipped cdn.toml's [[rules]] for /debian/ paths, as a config for an edge in front of `origin`. */
function aptConfig(origin: string): string {
  const shipped = parseToml(readFileSync("cdn.toml", "utf8")) as { rules: { path: string }[] };
  const rules = shipped.rules.filter((r) => r.path.startsWith("/debian/"));
  expect(rules.map((r) => r.path)).toEqual(["/debian/pool/**", "/debian/dists/**/by-hash/**", "/debian/dists/**"]);
  // apt asks for every index with `Cache-Control: max-age=0`; an edge that ignores clients' directives (to shield its
  // origin) relies on the rules alone to keep indexes and InRelease together: the test does too.
  return `[edge]\nname = "apt-edge"\norigin = "${origin}"\naccess_log = false\nclient_no_cache = "ignore"\n\n${stringifyToml({ rules })}\n`;
}

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

describe("apt through the edge", () => {
  let dir: string;
  let repo: AptRepo;
  let nginx: NginxOrigin;
  let edge: Running;
  let edgeUrl: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "parrot-apt-e2e-"));
    repo = new AptRepo(join(dir, "repo"));
    repo.publish([hello1, big]);
    nginx = await startNginxOrigin(repo.root, join(dir, "nginx"));
    writeFileSync(join(dir, "cdn.toml"), aptConfig(nginx.url));
    edge = await startNodeScript("scripts/edge.ts", ["--config", join(dir, "cdn.toml"), "--port", "0", "--store", join(dir, "store")], /edge ready: (\S+)/, 60_000);
    edgeUrl = edge.match[1]!;
  }, 120_000);

  afterAll(async () => {
    await edge?.stop();
    await nginx?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("apt-get update and download through the edge; a second client is served from the cache", async () => {
    const first = new AptClient(join(dir, "client1"), `${edgeUrl}/debian`, repo.keyring);
    const update = await first.aptGet(["update"]);
    expect(update).not.toMatch(/Hash Sum mismatch|Err:|W:/);
    const downloads = join(dir, "downloads1");
    rmSync(downloads, { recursive: true, force: true });
    mkdirSync(downloads);
    await first.aptGet(["download", "parrot-hello", "parrot-firmware"], downloads);
    expect(readdirSync(downloads).sort()).toEqual(["parrot-firmware_1.0_all.deb", "parrot-hello_1.0_all.deb"]);
    expect(sha256(join(downloads, "parrot-firmware_1.0_all.deb"))).toBe(repo.sha256(big));
    expect(sha256(join(downloads, "parrot-hello_1.0_all.deb"))).toBe(repo.sha256(hello1));

    // The large package came in slices: the origin sent it once, one slice per request.
    const bigPath = `/debian/${repo.poolPath(big)}`;
    const bigRequests = nginx.requests().filter(([, path]) => path === bigPath);
    expect(bigRequests.every(([, , status, , range]) => status === 206 && range.startsWith("bytes="))).toBe(true);
    const sentOnce = bigRequests.reduce((n, r) => n + r[3], 0);
    expect(sentOnce).toBe(readFileSync(join(repo.archive, repo.poolPath(big))).byteLength);

    // A second client: the packages come from the cache; the indexes are revalidated (304s at the origin).
    const before = nginx.requests().length;
    const second = new AptClient(join(dir, "client2"), `${edgeUrl}/debian`, repo.keyring);
    expect(await second.aptGet(["update"])).not.toMatch(/Hash Sum mismatch|Err:|W:/);
    const downloads2 = join(dir, "downloads2");
    mkdirSync(downloads2);
    await second.aptGet(["download", "parrot-hello", "parrot-firmware"], downloads2);
    expect(sha256(join(downloads2, "parrot-firmware_1.0_all.deb"))).toBe(repo.sha256(big));
    const later = nginx.requests().slice(before);
    expect(later.filter(([, path]) => path.includes("/pool/"))).toEqual([]);
    expect(later.filter(([, path]) => path.endsWith("/InRelease")).map(([, , status]) => status)).toEqual([304]);
  }, 120_000);

  it("a republished archive: apt-get update again sees the new packages, with no Hash Sum mismatch", async () => {
    repo.publish([hello2, big, extra]);
    const client = new AptClient(join(dir, "client1"), `${edgeUrl}/debian`, repo.keyring);
    const update = await client.aptGet(["update"]);
    expect(update).not.toMatch(/Hash Sum mismatch|Err:|W:/);
    expect(await client.aptCache(["policy", "parrot-hello"])).toMatch(/Candidate: 2\.0/);
    expect(await client.aptCache(["show", "parrot-extra"])).toMatch(/Version: 0\.1/);
    const downloads = join(dir, "downloads3");
    mkdirSync(downloads);
    await client.aptGet(["download", "parrot-hello"], downloads);
    expect(sha256(join(downloads, "parrot-hello_2.0_all.deb"))).toBe(repo.sha256(hello2));
  }, 120_000);

  it("the demo origin's archive (npm start) works through the shipped rules", async () => {
    let served: Served | undefined;
    let demoEdge: Running | undefined;
    try {
      served = await serveFetch(demoOrigin);
      writeFileSync(join(dir, "demo.toml"), aptConfig(served.url));
      demoEdge = await startNodeScript("scripts/edge.ts", ["--config", join(dir, "demo.toml"), "--port", "0", "--store", join(dir, "demo-store")], /edge ready: (\S+)/, 60_000);
      const client = new AptClient(join(dir, "demo-client"), `${demoEdge.match[1]}/debian`, repo.keyring);
      // The demo archive is unsigned: trusted=yes, as the README says.
      writeFileSync(join(dir, "demo-client/etc/sources.list"), `deb [trusted=yes] ${demoEdge.match[1]}/debian parrot main\n`);
      expect(await client.aptGet(["update"])).not.toMatch(/Hash Sum mismatch|Err:/);
      const downloads = join(dir, "demo-downloads");
      mkdirSync(downloads);
      await client.aptGet(["download", "parrot-hello"], downloads);
      expect(readdirSync(downloads)).toEqual(["parrot-hello_1.0_all.deb"]);
    } finally {
      await demoEdge?.stop();
      await served?.close();
    }
  }, 120_000);
});
