/**
 * `npm start` serves the demo site over HTTPS with HTTP/2 through the front door, with a local CA it makes: the
 * printed curl command (trusting that CA) gets HTTP/2 200, and a real browser (headless Chromium, trusting only that
 * CA's key) loads the demo site through an edge and reports `nextHopProtocol` h2 and a compressed transfer of the HTML.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { evaluateInPage } from "../support/chromium.ts";
import { spkiHash } from "../support/frontdoor.ts";

let cdn: Running;
let state: string;
let httpsPort: number;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  state = mkdtempSync(join(tmpdir(), "parrot-start-https-"));
  httpsPort = await freePort();
  cdn = await startNodeScript(
    "scripts/start.ts",
    ["--port", String(await freePort()), "--https-port", String(httpsPort), "--origin-port", "0", "--dns-port", "0", "--doh-port", "0", "--state-dir", state],
    /Ctrl-C stops everything/,
    120_000,
  );
}, 150_000);
afterAll(async () => {
  await cdn?.stop();
  if (state) rmSync(state, { recursive: true, force: true });
});

describe("npm start over HTTPS", () => {
  it("prints a curl command, trusting its local CA, that gets HTTP/2 200 through the front door", () => {
    const line = cdn
      .output()
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l.startsWith("curl --cacert"));
    expect(line).toBeDefined();
    expect(line).toContain(join(state, "certs", "local-ca.pem"));
    expect(execFileSync("bash", ["-c", line!], { encoding: "utf8", timeout: 20_000 }).trim()).toBe("HTTP/2 200");
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
