/**
 * `[frontdoor] upstream_host`: the box's workerd behind HAProxy listens on the loopback address given (not only
 * 127.0.0.1), the front door reaches it and the edge still sees the real client; any other address is refused at
 * start with the field and the reason.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../src/node/children.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { curlHttps, startEdgeBox, type EdgeBox } from "../support/frontdoor.ts";

const SITE = `
[frontdoor]
cert_dir = "{dir}/certs"
upstream_host = "127.0.0.9"
[[sites]]
names = ["up.fd.test"]
certificate = "local"
`;
let served: Served;
let box: EdgeBox;

beforeAll(async () => {
  served = await serveFetch(() => new Response("hello\n", { headers: { "cache-control": "max-age=60" } }));
  box = await startEdgeBox(SITE, { origin: served.url });
}, 120_000);

afterAll(async () => {
  await box?.stop();
  await served?.close();
});

describe("[frontdoor] upstream_host", () => {
  it("puts workerd on that loopback address, behind the front door, which still passes the real client", async () => {
    expect(box.workerdUrl).toMatch(/^http:\/\/127\.0\.0\.9:\d+$/);
    const ca = join(box.dir, "certs", "local-ca.pem");
    expect((await curlHttps(box, "up.fd.test", "/x", ca)).out).toBe("hello\n");
    const trace = await curlHttps(box, "up.fd.test", "/.well-known/cdn/trace", ca, ["--interface", "127.0.0.10", "-H", "X-Forwarded-For: 203.0.113.9"]);
    expect(trace.out).toMatch(/^ip=127\.0\.0\.10$/m);
  });

  it("refuses an address that is not IPv4 loopback, naming the field", () => {
    const dir = mkdtempSync(join(tmpdir(), "parrot-fd-up-"));
    try {
      const file = join(dir, "cdn.toml");
      writeFileSync(file, `[edge]\norigin = "${served.url}"\nstore_dir = "${dir}/store"\n${SITE.replaceAll("{dir}", dir).replace("127.0.0.9", "192.0.2.1")}`);
      const r = spawnSync(process.execPath, [join(ROOT, "scripts/edge.ts"), "--config", file, "--port", "0", "--https-port", "0"], { encoding: "utf8", timeout: 30_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain("frontdoor.upstream_host: must be an IPv4 loopback address (127.0.0.0/8)");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
