import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../config/config.ts";
import { createGeoIp } from "../geoip/geoip.ts";
import { mmdbSource } from "../geoip/mmdb.ts";
import { Catalog, parsePackages, parseSha256Sums } from "./catalog.ts";
import { FileState } from "./mirror-state.ts";
import { Redirector } from "./redirector.ts";
import { digestOf } from "./scan.ts";

const geoip = createGeoIp([mmdbSource(readFileSync("test/fixtures/GeoIP2-City-Test.mmdb")), mmdbSource(readFileSync("test/fixtures/GeoLite2-ASN-Test.mmdb"))]);
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

/** Client addresses of the GeoIP test data. */
const LONDON = "81.2.69.142";
const MILTON_WA = "216.160.83.56";
const LINKOPING = "89.160.20.112"; // AS29518

function problems(toml: string): string[] {
  try {
    parseConfig(toml);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

const BASE = `[redirector]\norigin = "http://origin.test"\ncdn = "http://cdn.test"\npaths = ["/iso/**", "/debian/**"]\n`;

describe("[[mirrors]] and [redirector] in cdn.toml", () => {
  it("names the field and the reason of each mistake", () => {
    const p = problems(
      `${BASE}\n[[mirrors]]\nname = "a b"\nurl = "ftp://x"\n\n[[mirrors]]\nname = "ok"\nurl = "http://m.test/"\nlat = 10\n\n[[mirrors]]\nname = "ok"\nurl = "http://m2.test/"\ncountries = ["GBR"]\nweight = -1\n`,
    );
    expect(p).toContain("mirrors[0].name: letters, digits, '.', '_' and '-' only (at most 64)");
    expect(p).toContain("mirrors[0].url: must be an http:// or https:// URL");
    expect(p).toContain("mirrors[1].lon: lat and lon go together");
    expect(p).toContain("mirrors[2].countries[0]: an ISO 3166 alpha-2 country code");
    expect(p.some((x) => x.startsWith("mirrors[2].weight:"))).toBe(true);
    expect(p).toContain("mirrors[2].lat: give lat and lon, or address (its public IP, located with the GeoIP data), or a url whose host is an IP address");
  });

  it("refuses two mirrors of one name, a [redirector] without paths, apt_mirrorlist without apt_archive", () => {
    const two = `[[mirrors]]\nname = "m"\nurl = "http://10.0.0.1/"\n\n[[mirrors]]\nname = "m"\nurl = "http://10.0.0.2/"\n`;
    expect(problems(`${BASE}${two}`)).toEqual(["mirrors[1].name: another mirror is already named m"]);
    expect(problems(`[redirector]\norigin = "http://o"\ncdn = "http://c"\npaths = []\napt_mirrorlist = "/debian/mirrors.txt"\n`)).toEqual([
      "redirector.paths: name at least one path, e.g. /iso/**",
      "redirector.apt_archive: apt_mirrorlist and apt_archive go together",
    ]);
  });

  it("takes a mirror located by its address, and defaults that keep signed indexes on the CDN", () => {
    const c = parseConfig(`${BASE}[[mirrors]]\nname = "m"\nurl = "http://mirror.test/parrot"\naddress = "${LONDON}"\n`);
    expect(c.mirrors[0]!.url).toBe("http://mirror.test/parrot/");
    expect(c.redirector!.never_redirect).toEqual(["/**/InRelease", "/**/Release", "/**/Release.gpg"]);
    const r = new Redirector({ config: c, geoip });
    expect(r.mirrors[0]!.location).toMatchObject({ country: "GB", continent: "EU" });
    expect(r.mirrors[0]!.location.lat).toBeCloseTo(51.5, 0);
  });
});

describe("a mirror's digest headers", () => {
  it("reads Repr-Digest and Digest as hex; a malformed one says nothing (no failure of the mirror)", () => {
    const b64 = createHash("sha256").update("x").digest("base64");
    expect(digestOf(new Headers({ "repr-digest": `sha-256=:${b64}:` }))).toBe(sha("x"));
    expect(digestOf(new Headers({ digest: `SHA-256=${b64}` }))).toBe(sha("x"));
    expect(digestOf(new Headers({ "repr-digest": "sha-256=:a:" }))).toBeUndefined();
    expect(digestOf(new Headers({ "repr-digest": "sha-256=:YWJj:" }))).toBeUndefined(); // 3 bytes, not 32
  });

  it("a same-size copy whose announced SHA-256 differs from the list's is wrong, not up to date", async () => {
    const w = world({ origin, mirrors: { "london.test": full(), "cambridge.test": full(), "seattle.test": "down", "stockholm.test": "down" } });
    const fetchImpl = async (input: Request | string, init?: RequestInit) => {
      const res = await w.fetchImpl(input, init);
      const url = typeof input === "string" ? input : input.url;
      if (!url.startsWith("http://london.test/iso/parrot.iso")) return res;
      const other = createHash("sha256").update("y".repeat(ISO.length)).digest("base64");
      return new Response(null, { status: res.status, headers: { "content-length": res.headers.get("content-length")!, "repr-digest": `sha-256=:${other}:` } });
    };
    const r = new Redirector({ config: redirectorConfig(), geoip, fetch: fetchImpl, now: () => 1 });
    await r.refreshOrigin();
    await r.scanRound();
    const iso = r.catalog.get("/iso/parrot.iso")!;
    expect(r.mirrors[0]!.files[iso.id]).toBe(FileState.Wrong);
    expect(r.mirrors[1]!.files[iso.id]).toBe(FileState.Present);
    expect((await get(r, iso.path, LONDON)).headers.get("x-mirror")).toBe("cambridge");
  });
});

describe("origin lists", () => {
  it("reads SHA256SUMS and apt Packages, relative to their roots, refusing names that leave them", () => {
    expect(parseSha256Sums(`${"a".repeat(64)}  parrot.iso\n${"B".repeat(64)} *sub/x.img\n${"c".repeat(64)}  ../etc/passwd\nnoise\n`, "/iso/")).toEqual([
      { path: "/iso/parrot.iso", sha256: "a".repeat(64) },
      { path: "/iso/sub/x.img", sha256: "b".repeat(64) },
    ]);
    const packages = `Package: a\nFilename: pool/main/a/a_1_all.deb\nSize: 1234\nSHA256: ${"d".repeat(64)}\n\nPackage: b\nFilename: pool/main/b/b_1_all.deb\nSize: 7\n`;
    expect(parsePackages(packages, "/debian/")).toEqual([
      { path: "/debian/pool/main/a/a_1_all.deb", size: 1234, sha256: "d".repeat(64) },
      { path: "/debian/pool/main/b/b_1_all.deb", size: 7 },
    ]);
  });

  it("keeps ids across updates; a changed file is new again, a missing one unlisted", () => {
    const c = new Catalog();
    c.update([{ path: "/a", size: 1 }, { path: "/b", size: 2 }], 1);
    const r = c.update([{ path: "/a", size: 1 }, { path: "/b", size: 3 }, { path: "/c", size: 4 }], 2);
    expect(r).toEqual({ added: [2], changed: [1], removed: [] });
    expect(c.get("/b")).toMatchObject({ id: 1, size: 3, firstSeen: 2 });
    expect(c.update([{ path: "/b", size: 3 }], 3).removed).toEqual([0, 2]);
    expect(c.get("/a")).toBeUndefined();
  });
});

const full = () => ({ "/iso/parrot.iso": ISO, "/iso/parrot-new.iso": NEW_ISO, "/debian/pool/main/h/hello_1_all.deb": DEB });

/** A world of fake HTTP servers: the origin, mirrors (files with sizes, or down), the CDN. */
function world(opts: { mirrors: Record<string, Record<string, string> | "down">; origin: Record<string, string> }) {
  const calls: string[] = [];
  const fetchImpl = async (input: Request | string, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === "string" ? input : input.url);
    const method = init?.method ?? "GET";
    calls.push(`${method} ${url.href}`);
    const files = url.host === "origin.test" || url.host === "cdn.test" ? opts.origin : opts.mirrors[url.host];
    if (files === undefined || files === "down") throw new TypeError("fetch failed: connection refused");
    const body = files[decodeURIComponent(url.pathname).replace(/^\/pub\//, "/")]; // stockholm keeps its copy under /pub/
    if (body === undefined) return new Response("not found", { status: 404 });
    return new Response(method === "HEAD" ? null : body, { headers: { "content-length": String(body.length), "x-from": url.host } });
  };
  return { fetchImpl, calls };
}

const ISO = "x".repeat(1000);
const NEW_ISO = "n".repeat(500);
const DEB = "d".repeat(300);

function redirectorConfig(extra = "scan_files_per_round = 100") {
  return parseConfig(`[admin]
token = "redirector-test-token"

[redirector]
origin = "http://origin.test"
cdn = "http://cdn.test"
paths = ["/iso/**", "/debian/**"]
indexes = [ { path = "/iso/SHA256SUMS", kind = "sha256sums" }, { path = "/debian/dists/parrot/main/binary-all/Packages", kind = "packages" } ]
apt_mirrorlist = "/debian/mirrors.txt"
apt_archive = "/debian/"
spread_km = 300
max_failures = 2
${extra}
[[mirrors]]
name = "london"
url = "http://london.test/"
lat = 51.5
lon = -0.12
country = "GB"

[[mirrors]]
name = "cambridge"
url = "http://cambridge.test/"
lat = 52.2
lon = 0.12
country = "GB"

[[mirrors]]
name = "seattle"
url = "http://seattle.test/"
lat = 47.6
lon = -122.3
country = "US"

[[mirrors]]
name = "stockholm-isos"
url = "http://stockholm.test/pub/"
lat = 59.3
lon = 18.1
country = "SE"
asn = 29518
paths = ["/iso/**"]
`);
}

const origin = {
  "/iso/SHA256SUMS": `${sha(ISO)}  parrot.iso\n${sha(NEW_ISO)}  parrot-new.iso\n`,
  "/iso/parrot.iso": ISO,
  "/iso/parrot-new.iso": NEW_ISO,
  "/debian/dists/parrot/main/binary-all/Packages": `Package: hello\nFilename: pool/main/h/hello_1_all.deb\nSize: ${DEB.length}\nSHA256: ${sha(DEB)}\n`,
  "/debian/dists/parrot/InRelease": "signed",
};

async function scanned(mirrors: Record<string, Record<string, string> | "down">) {
  const w = world({ origin, mirrors });
  let t = 1_000_000;
  const r = new Redirector({ config: redirectorConfig(), geoip, fetch: w.fetchImpl, now: () => t });
  await r.refreshOrigin();
  t += 1000;
  await r.scanRound();
  return { r, w };
}

const get = (r: Redirector, path: string, ip: string, headers: Record<string, string> = {}) => r.handle(new Request(`http://redirector.test${path}`, { headers }), ip);

describe("the redirector", () => {
  const full = { "/iso/parrot.iso": ISO, "/iso/parrot-new.iso": NEW_ISO, "/debian/pool/main/h/hello_1_all.deb": DEB };
  const lagging = { "/iso/parrot.iso": ISO, "/debian/pool/main/h/hello_1_all.deb": DEB };

  it("sends a client to the nearest mirror that has the exact file, with the others as Links and the digest", async () => {
    const { r } = await scanned({ "london.test": lagging, "cambridge.test": { ...full, "/iso/parrot.iso": "short" }, "seattle.test": full, "stockholm.test": "down" });
    const res = await get(r, "/iso/parrot.iso", LONDON);
    expect(res.status).toBe(302);
    // Cambridge has a wrong-size copy: London is the only near one.
    expect(res.headers.get("location")).toBe("http://london.test/iso/parrot.iso");
    expect(res.headers.get("link")).toBe(
      "<http://london.test/iso/parrot.iso>; rel=duplicate; pri=1; geo=gb, <http://seattle.test/iso/parrot.iso>; rel=duplicate; pri=2; geo=us, <http://cdn.test/iso/parrot.iso>; rel=duplicate; pri=3",
    );
    expect(res.headers.get("repr-digest")).toBe(`sha-256=:${createHash("sha256").update(ISO).digest("base64")}:`);
    // The newest file: London lags, Cambridge has it.
    expect((await get(r, "/iso/parrot-new.iso", LONDON)).headers.get("location")).toBe("http://cambridge.test/iso/parrot-new.iso");
    expect((await get(r, "/iso/parrot.iso", MILTON_WA)).headers.get("location")).toBe("http://seattle.test/iso/parrot.iso");
  });

  it("serves from the CDN a file no mirror has yet, one not listed, and never redirects InRelease", async () => {
    const { r } = await scanned({ "london.test": lagging, "cambridge.test": lagging, "seattle.test": lagging, "stockholm.test": lagging });
    const res = await get(r, "/iso/parrot-new.iso?x=1", LONDON);
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("http://cdn.test/iso/parrot-new.iso?x=1");
    expect(res.headers.get("x-mirror-reason")).toBe("no-mirror-has-it");
    expect((await get(r, "/iso/unknown.iso", LONDON)).headers.get("x-mirror-reason")).toBe("not-listed");
    const inrelease = await get(r, "/debian/dists/parrot/InRelease", LONDON);
    expect(inrelease.status).toBe(200);
    expect(inrelease.headers.get("x-from")).toBe("cdn.test");
    expect(await inrelease.text()).toBe("signed");
    expect((await get(r, "/other/file", LONDON)).status).toBe(404);
  });

  it("spreads clients among mirrors of similar distance by weight, the same client always to the same one", async () => {
    const { r } = await scanned({ "london.test": full, "cambridge.test": full, "seattle.test": full, "stockholm.test": full });
    const counts: Record<string, number> = {};
    for (let i = 0; i < 400; i++) {
      const ip = `81.2.69.${144 + (i % 16)}`;
      const loc = (await get(r, `/iso/parrot.iso?${i}`, ip)).headers.get("location")!;
      counts[new URL(loc).host] = (counts[new URL(loc).host] ?? 0) + 1;
      if (i < 16) expect((await get(r, "/iso/parrot.iso", ip)).headers.get("location")).toBe((await get(r, "/iso/parrot.iso", ip)).headers.get("location"));
    }
    expect(Object.keys(counts).sort()).toEqual(["cambridge.test", "london.test"]);
    expect(counts["london.test"]!).toBeGreaterThan(100);
    expect(counts["cambridge.test"]!).toBeGreaterThan(100);
  });

  it("prefers the client's AS, and keeps partial mirrors to the paths they carry", async () => {
    const { r } = await scanned({ "london.test": full, "cambridge.test": full, "seattle.test": full, "stockholm.test": full });
    expect((await get(r, "/iso/parrot.iso", LINKOPING)).headers.get("x-mirror")).toBe("stockholm-isos");
    expect((await get(r, "/iso/parrot.iso", LINKOPING)).headers.get("location")).toBe("http://stockholm.test/pub/iso/parrot.iso");
    expect(["london", "cambridge"]).toContain((await get(r, "/debian/pool/main/h/hello_1_all.deb", LINKOPING)).headers.get("x-mirror"));
  });

  it("leaves out a mirror after max_failures and takes it back when a scan succeeds", async () => {
    const mirrors: Record<string, Record<string, string> | "down"> = { "london.test": full, "cambridge.test": "down", "seattle.test": full, "stockholm.test": full };
    const w = world({ origin, mirrors });
    const r = new Redirector({ config: redirectorConfig(), geoip, fetch: w.fetchImpl, now: () => 1 });
    await r.refreshOrigin();
    mirrors["london.test"] = full;
    await r.scanRound();
    expect(r.mirrors[0]!.usable(2)).toBe(true);
    mirrors["london.test"] = "down";
    await r.scanRound();
    expect(r.mirrors[0]!.usable(2)).toBe(false);
    for (let i = 0; i < 10; i++) expect((await get(r, "/iso/parrot.iso", `81.2.69.${144 + i}`)).headers.get("x-mirror")).not.toBe("london");
    mirrors["london.test"] = full;
    await r.scanRound();
    expect(r.mirrors[0]!.usable(2)).toBe(true);
    expect(r.mirrors[0]!.files[r.catalog.get("/iso/parrot.iso")!.id]).toBe(FileState.Present);
  });

  it("counts a mirror whose trace equals the origin's as having unchecked files; a known-missing one still does not", async () => {
    const traceOrigin: Record<string, string> = { ...origin, "/project/trace/parrot": "2026-12-07T10:00Z" };
    const mirrors: Record<string, Record<string, string> | "down"> = {
      "london.test": { "/project/trace/parrot": "2026-12-07T10:00Z", "/iso/parrot.iso": ISO },
      "cambridge.test": "down", "seattle.test": "down", "stockholm.test": "down",
    };
    const w = world({ origin: traceOrigin, mirrors });
    const config = redirectorConfig("scan_files_per_round = 1");
    config.mirrors[0]!.trace = "project/trace/parrot";
    const r = new Redirector({ config, geoip, fetch: w.fetchImpl, now: () => 1 });
    await r.refreshOrigin();
    await r.scanRound();
    const london = r.mirrors[0]!;
    expect(london.synced).toBe(true);
    // One HEAD this round: the newest file not known present (the package: missing there).
    const deb = r.catalog.get("/debian/pool/main/h/hello_1_all.deb")!;
    expect(london.files[deb.id]).toBe(FileState.Absent);
    expect((await get(r, deb.path, LONDON)).headers.get("x-mirror")).toBe("cdn");
    const newest = r.catalog.get("/iso/parrot-new.iso")!;
    expect(london.files[newest.id]).toBe(FileState.Unknown);
    expect((await get(r, newest.path, LONDON)).headers.get("x-mirror")).toBe("london");
    // A trace that no longer matches (the origin published again): unchecked files are not trusted.
    traceOrigin["/project/trace/parrot"] = "2026-12-07T16:00Z";
    await r.scanRound();
    expect(london.synced).toBe(false);
    expect((await get(r, newest.path, LONDON)).headers.get("x-mirror")).toBe("cdn");
  });

  it("answers Metalink 4, the mirror list page and JSON, the apt mirror list, and metrics per mirror and country", async () => {
    const { r } = await scanned({ "london.test": full, "cambridge.test": { ...full, "/debian/pool/main/h/hello_1_all.deb": "x" }, "seattle.test": full, "stockholm.test": "down" });
    const meta = await get(r, "/iso/parrot.iso", MILTON_WA, { accept: "application/metalink4+xml" });
    expect(meta.headers.get("content-type")).toBe("application/metalink4+xml");
    // The file's digest is in the document; a Repr-Digest header would describe the document itself.
    expect(meta.headers.get("repr-digest")).toBeNull();
    expect(meta.headers.get("digest")).toBeNull();
    const xml = await meta.text();
    expect(xml).toContain(`<size>${ISO.length}</size>`);
    expect(xml).toContain(`<hash type="sha-256">${sha(ISO)}</hash>`);
    expect(xml.indexOf("seattle.test")).toBeLessThan(xml.indexOf("london.test"));
    expect(xml).toContain(`<url priority="4">http://cdn.test/iso/parrot.iso</url>`);
    expect((await (await get(r, "/iso/parrot.iso?metalink", MILTON_WA)).text()).includes("<metalink")).toBe(true);

    const json = (await (await get(r, "/iso/parrot.iso?mirrorlist=json", LONDON)).json()) as { client: { country: string }; mirrors: { name: string; state: string }[] };
    expect(json.client.country).toBe("GB");
    expect(json.mirrors.map((m: { name: string; state: string }) => `${m.name}:${m.state}`)).toEqual([
      expect.stringMatching(/^(london|cambridge):up to date$/),
      expect.stringMatching(/^(london|cambridge):up to date$/),
      "seattle:up to date",
      "stockholm-isos:unchecked",
    ]);
    const page = await (await get(r, "/iso/parrot.iso?mirrorlist", LONDON)).text();
    expect(page).toContain("<h1>Mirrors of /iso/parrot.iso</h1>");

    // Cambridge holds a wrong copy of a package: out of the apt list; the CDN last, with no type (indexes).
    const apt = await (await get(r, "/debian/mirrors.txt", LONDON)).text();
    expect(apt.split("\n").filter((l) => l && !l.startsWith("#"))).toEqual([
      "http://london.test/debian/\tpriority:1\ttype:deb",
      "http://seattle.test/debian/\tpriority:2\ttype:deb",
      "http://cdn.test/debian/",
    ]);

    expect((await get(r, "/.well-known/cdn/metrics", LONDON)).status).toBe(401);
    const metrics = await (await get(r, "/.well-known/cdn/metrics", LONDON, { authorization: "Bearer redirector-test-token" })).text();
    expect(metrics).toMatch(/parrot_redirector_mirror_up\{mirror="stockholm-isos"\} 0/);
    expect(metrics).toMatch(/parrot_redirector_metalinks_total\{country="US"\} 2/);
    expect(metrics).toMatch(/parrot_redirector_apt_lists_total\{country="GB"\} 1/);
  });

  it("puts file names with spaces and non-ASCII letters in URLs percent-encoded (Location, Link, scans)", async () => {
    const odd = { ...origin, "/iso/SHA256SUMS": `${origin["/iso/SHA256SUMS"]}${sha("odd")}  parrot 7.0 ü+x.iso\n`, "/iso/parrot 7.0 ü+x.iso": "odd" };
    const w = world({ origin: odd, mirrors: { "london.test": { "/iso/parrot 7.0 ü+x.iso": "odd" }, "cambridge.test": "down", "seattle.test": "down", "stockholm.test": "down" } });
    const r = new Redirector({ config: redirectorConfig(), geoip, fetch: w.fetchImpl, now: () => 1 });
    await r.refreshOrigin();
    await r.scanRound();
    const res = await get(r, "/iso/parrot%207.0%20%C3%BC+x.iso", LONDON);
    expect(res.headers.get("location")).toBe("http://london.test/iso/parrot%207.0%20%C3%BC+x.iso");
    expect(res.headers.get("link")).toContain("<http://cdn.test/iso/parrot%207.0%20%C3%BC+x.iso>; rel=duplicate; pri=2");
    expect(w.calls).toContain("HEAD http://london.test/iso/parrot%207.0%20%C3%BC+x.iso");
  });

  it("a partial mirror never counts as carrying a file outside its paths, however the catalog grew", async () => {
    const w = world({ origin, mirrors: {} });
    const r = new Redirector({ config: redirectorConfig(), geoip, fetch: w.fetchImpl, now: () => 1 });
    const stockholm = r.mirrors[3]!; // paths = ["/iso/**"]
    const grow = (paths: string[]) => {
      const { changed } = r.catalog.update(paths.map((path) => ({ path, size: 1 })), 1);
      for (const m of r.mirrors) m.follow(r.catalog, changed);
    };
    grow(["/iso/a", "/iso/b", "/iso/c"]);
    grow(["/iso/a", "/iso/b", "/iso/c", "/iso/d", "/iso/e"]);
    grow(["/iso/a", "/iso/b", "/iso/c", "/iso/d", "/iso/e", "/debian/pool/x.deb"]);
    expect(stockholm.files[r.catalog.get("/debian/pool/x.deb")!.id]).toBe(FileState.NotCarried);
    expect(stockholm.files[r.catalog.get("/iso/e")!.id]).toBe(FileState.Unknown);
  });

  it("a reload keeps the catalog and the checks of unchanged mirrors", async () => {
    const { r, w } = await scanned({ "london.test": full, "cambridge.test": full, "seattle.test": full, "stockholm.test": full });
    const config = redirectorConfig();
    config.mirrors[1]!.url = "http://cambridge2.test/"; // moved: checked again from nothing
    const next = new Redirector({ config, geoip, fetch: w.fetchImpl, now: () => 2, previous: r });
    const iso = next.catalog.get("/iso/parrot.iso")!;
    expect(next.mirrors[0]!.has(iso.id)).toBe(true);
    expect(next.mirrors[1]!.files[iso.id]).toBe(FileState.Unknown);
    expect((await get(next, "/iso/parrot.iso", LONDON)).headers.get("x-mirror")).toBe("london");
  });

  it("locates a client by the connection, a configured network by its stand-in, never by a client's header", async () => {
    const w = world({ origin, mirrors: { "london.test": full, "cambridge.test": full, "seattle.test": full, "stockholm.test": full } });
    const config = redirectorConfig(`scan_files_per_round = 100\nnetworks = [ { cidr = "127.0.0.0/8", locate_as = "${MILTON_WA}" } ]`);
    const r = new Redirector({ config, geoip, fetch: w.fetchImpl, now: () => 1 });
    await r.refreshOrigin();
    await r.scanRound();
    expect((await get(r, "/iso/parrot.iso", "127.0.0.5", { "x-forwarded-for": LONDON })).headers.get("x-mirror")).toBe("seattle");
    expect(r.locate("127.0.0.5").country).toBe("US");
  });
});
