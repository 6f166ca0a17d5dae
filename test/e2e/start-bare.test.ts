/**
 * `npm start` on a fresh machine: no HAProxy, openssl, nats-server or BIRD on the PATH (only Node's folder and the
 * base tools the boxes use: sh, setpriv, sleep). The CDN still comes up, over HTTP, and each engine left out is one
 * line saying what to install.
 */
import { mkdtempSync, rmSync, symlinkSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installed } from "../../src/node/engines.ts";
import { printed, sh, startNpmStart, type StartedCdn } from "../support/npm-start.ts";

let cdn: StartedCdn;
let bin: string;

beforeAll(async () => {
  bin = mkdtempSync(join(tmpdir(), "parrot-bare-path-"));
  mkdirSync(join(bin, "bin"));
  for (const tool of ["sh", "setpriv", "sleep"]) {
    const at = ["/usr/bin", "/bin"].map((d) => join(d, tool)).find((p) => installed(p));
    if (!at) throw new Error(`${tool} not found`);
    symlinkSync(at, join(bin, "bin", tool));
  }
  const PATH = `${join(bin, "bin")}:${dirname(process.execPath)}`;
  // The stripped PATH hides every engine (checked, so the test cannot pass on a PATH that still has one).
  for (const engine of ["haproxy", "openssl", "nats-server", "bird", "birdc"]) expect(installed(engine, PATH)).toBe(false);
  cdn = await startNpmStart({ env: { ...process.env, PATH } });
}, 150_000);
afterAll(async () => {
  await cdn?.stop();
  if (bin) rmSync(bin, { recursive: true, force: true });
});

describe("npm start without HAProxy, openssl and nats-server", () => {
  it("says in one line each what to install for HTTPS and for the JetStream control plane", () => {
    const out = cdn.run.output();
    expect(out).toMatch(/^HTTPS +off, HTTP only: apt-get install haproxy openssl for HTTPS and HTTP\/2 through each edge's front door$/m);
    expect(out).toMatch(/^control plane direct fan-out to each edge \(apt-get install nats-server for the JetStream control plane\)$/m);
    expect(printed(cdn, "curl --cacert")).toEqual([]);
  });

  it("serves over HTTP at the edge the director gives: MISS, then HIT", () => {
    const line = printed(cdn, "curl -sI")[0]!;
    expect(line).toBeDefined();
    expect(sh(line).trim()).toBe("x-cache-status: MISS");
    expect(sh(line).trim()).toBe("x-cache-status: HIT");
  });

  it("serves every edge on its plain HTTP port", async () => {
    for (const host of ["127.0.0.2", "127.0.0.3", "127.0.0.4"]) {
      const res = await fetch(`http://${host}:${cdn.port}/.well-known/cdn/health`);
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/^ok /);
    }
  });
});
