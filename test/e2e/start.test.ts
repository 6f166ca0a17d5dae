/**
 * `npm start` as a newcomer meets it: the printed "how to test the CDN" commands, run with the real dig and curl; the
 * printed HTTPS check, and a real browser (headless Chromium, trusting only the run's local CA's key) loading the demo
 * site through an edge's front door over HTTP/2 with the HTML compressed, and over HTTP/3 through Caddy; the printed
 * resumed ISO download. Ports are free ones so the test never collides with a running CDN.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../src/node/children.ts";
import { evaluateInPage } from "../support/chromium.ts";
import { spkiHash } from "../support/frontdoor.ts";
import { printed as printedBy, sh, startNpmStart, type StartedCdn } from "../support/npm-start.ts";

let cdn: StartedCdn;
let state: string;
let httpsPort: number;

beforeAll(async () => {
  cdn = await startNpmStart();
  ({ state, httpsPort } = cdn);
}, 150_000);
afterAll(async () => {
  await cdn?.stop();
});

const printed = (command: string) => printedBy(cdn, command);

describe("npm start", () => {
  it("prints TXT checks that show how the CDN sees the client", () => {
    const [plain, withSubnet] = printed("dig -t txt");
    expect(sh(plain!)).toMatch(/"ip 127\.0\.0\.1 v4 city unknown country unknown/);
    // The embedded GeoIP data knows the seed's address: Italy, AS206701, as in the announcement.
    expect(sh(withSubnet!)).toMatch(/"ip 185\.178\.92\.254 v4 city \S.* country it ita state eu region .* as as206701"/);
  });

  it("prints a director query that answers edge addresses of both families", () => {
    const out = sh(printed("dig @")[0]!).trim().split("\n");
    expect(out.filter((l) => /^127\.0\.0\.[234]$/.test(l))).toHaveLength(2);
    expect(out.filter((l) => /^2001:db8:2[123]::1$/.test(l))).toHaveLength(2);
  });

  it("prints a curl check, at a director address, that shows MISS, then HIT", () => {
    const line = printed("curl -sI")[0]!;
    expect(sh(line).trim()).toBe("x-cache-status: MISS");
    expect(sh(line).trim()).toBe("x-cache-status: HIT");
  });

  it("prints a curl check of the demo's edge function: its banner names the edge, and it reached the home page through the cache", () => {
    const line = printed("curl http://")[0]!;
    expect(line).toMatch(/\/hello\/$/);
    const answer = sh(line);
    // From 127.0.0.1 the GeoIP data knows no country; the edge's name is request.cf.colo.
    expect(answer).toMatch(/^Hello from somewhere this edge's GeoIP data does not know! This answer was made by an edge function on edge eu-lon\./);
    expect(answer).toMatch(/The home page, through the cache: 200 (MISS|HIT)/);
  });
});

describe("npm start's tiered cache", () => {
  it("prints a check whose Cache-Status shows two hops: the shield, then the edge", () => {
    const line = printed("curl -sI").find((l) => l.includes("cache-status"));
    expect(line).toBeDefined();
    const got = sh(line!).trim();
    expect(got).toMatch(/^cache-status: shield-local; fwd=uri-miss; stored, [a-z0-9-]+; fwd=uri-miss; stored$/i);
  });
});

describe("npm start's mirror redirector", () => {
  it("prints a redirect to a demo mirror (Links, digest) and the mirror list", () => {
    const redirect = printed("curl -sI").find((l) => l.includes("/iso/parrot-demo-1.0-amd64.iso"))!;
    const headers = sh(redirect);
    expect(headers).toMatch(/^location: http:\/\/127\.0\.0\.1:\d+\/iso\/parrot-demo-1\.0-amd64\.iso\r?$/m);
    expect(headers).toMatch(/^link: <http:\/\/127\.0\.0\.1:\d+\/iso\/parrot-demo-1\.0-amd64\.iso>; rel=duplicate; pri=1; geo=(gb|us), .*; rel=duplicate; pri=3\r?$/m);
    expect(headers).toMatch(/^repr-digest: sha-256=:[A-Za-z0-9+/]{43}=:\r?$/m);
    const list = JSON.parse(sh(printed("curl -s '").find((l) => l.includes("mirrorlist=json"))!)) as { mirrors: { name: string; state: string }[] };
    expect(list.mirrors.map((m) => `${m.name} ${m.state}`).sort()).toEqual(["demo-mirror-lon up to date", "demo-mirror-nyc up to date"]);
  });
});

describe("npm start over HTTPS", () => {
  it("prints a curl command, trusting its local CA, that gets HTTP/2 200 through the front door", () => {
    const line = printed("curl --cacert")[0];
    expect(line).toBeDefined();
    expect(line).toContain(join(state, "certs", "local-ca.pem"));
    expect(sh(line!).trim()).toBe("HTTP/2 200");
  });

  it("loads the demo site in headless Chromium over HTTP/2", async () => {
    const ca = readFileSync(join(state, "certs", "local-ca.pem"), "utf8");
    const facts = (await evaluateInPage(
      `https://www.geo.example.org:${httpsPort}/`,
      `(() => { const n = performance.getEntriesByType("navigation")[0];
         return { protocol: n.nextHopProtocol, title: document.title, encoded: n.encodedBodySize, decoded: n.decodedBodySize,
                  image: document.images[0]?.complete && document.images[0]?.naturalWidth > 0 }; })()`,
      { hostRules: "MAP www.geo.example.org 127.0.0.2", spki: [spkiHash(ca)] },
    )) as { protocol: string; title: string; encoded: number; decoded: number; image: boolean };
    expect(facts.title).toBe("parrot-cdn demo");
    expect(facts.protocol).toBe("h2");
    expect(facts.image).toBe(true);
    // The edge compressed the HTML for the browser (br or gzip): fewer bytes on the wire than the page has.
    console.log(`Chromium: ${facts.protocol}, HTML ${facts.encoded} bytes on the wire for ${facts.decoded} decoded`);
    expect(facts.decoded).toBeGreaterThan(1024);
    expect(facts.encoded).toBeLessThan(facts.decoded / 2);
  }, 60_000);
});

describe("npm start over HTTP/3", () => {
  it("prints a check that HTTPS answers announce HTTP/3, and Chromium loads the demo site over it (QUIC, through Caddy)", async () => {
    const line = printed("curl --cacert").find((l) => l.includes("alt-svc"));
    expect(line).toBeDefined();
    expect(sh(line!).trim()).toBe(`alt-svc: h3=":${cdn.http3Port}"; ma=86400`);
    const ca = readFileSync(join(state, "certs", "local-ca.pem"), "utf8");
    const facts = (await evaluateInPage(
      `https://www.geo.example.org:${cdn.http3Port}/`,
      `(() => { const n = performance.getEntriesByType("navigation")[0]; return { protocol: n.nextHopProtocol, title: document.title }; })()`,
      { hostRules: "MAP www.geo.example.org 127.0.0.2", spki: [spkiHash(ca)], quicOrigins: [`www.geo.example.org:${cdn.http3Port}`] },
    )) as { protocol: string; title: string };
    expect(facts).toEqual({ protocol: "h3", title: "parrot-cdn demo" });
  }, 60_000);
});

describe("npm start's mirror check", () => {
  it("prints a resumed download of the demo ISO that comes from the cache, checksum right", () => {
    // The printed block, from "E=…" to the SHA256SUMS check, run as one script in a fresh folder.
    const lines = cdn.run.output().split("\n").map((l) => l.trim());
    const first = lines.findIndex((l) => l.startsWith("E=http://"));
    const last = lines.findIndex((l, i) => i > first && l.includes("sha256sum -c"));
    expect(first).toBeGreaterThanOrEqual(0);
    expect(last).toBeGreaterThan(first);
    const dir = mkdtempSync(join(tmpdir(), "parrot-start-iso-"));
    let out: string;
    try {
      out = sh(lines.slice(first, last + 1).join("\n"), dir);
    } finally {
      rmSync(dir, { recursive: true, force: true }); // the 300 MiB download
    }
    expect(out).toContain("200 314572800");
    expect(out).toMatch(/content-range: bytes 104857600-314572799\/314572800/i);
    expect(out).toMatch(/x-cache-status: HIT/i);
    expect(out).toContain("parrot-demo-1.0-amd64.iso: OK");
  }, 90_000);
});

describe("a bad config file", () => {
  it("stops the edge at start with the field and the reason", () => {
    const dir = mkdtempSync(join(tmpdir(), "parrot-bad-"));
    const file = join(dir, "cdn.toml");
    writeFileSync(file, '[edge]\norigin = "http://127.0.0.1:1"\nset_cookie = "eat"\n');
    const r = spawnSync(process.execPath, [join(ROOT, "scripts/edge.ts"), "--config", file, "--port", "0"], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${file}: invalid CDN config`);
    expect(r.stderr).toMatch(/edge\.set_cookie: Invalid option: expected one of "bypass"\|"strip"\|"store"/);
  });
});
