/**
 * `npm start` with nats-server installed runs the JetStream control plane on loopback, says so, and a purge through
 * it (the CLI with the run's config) reaches its three edges.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, startNodeScript, type Running } from "../../src/node/children.ts";
import { freePort } from "../support/ports.ts";

let cdn: Running;
let state: string;

beforeAll(async () => {
  state = mkdtempSync(join(tmpdir(), "parrot-start-control-"));
  cdn = await startNodeScript(
    "scripts/start.ts",
    ["--port", String(await freePort()), "--origin-port", "0", "--dns-port", "0", "--doh-port", "0", "--state-dir", state],
    /Ctrl-C stops everything/,
    120_000,
  );
}, 150_000);

afterAll(async () => {
  await cdn?.stop();
  rmSync(state, { recursive: true, force: true });
});

describe("npm start with nats-server installed", () => {
  it("says it runs the JetStream control plane, and purges through it reach every edge", async () => {
    expect(cdn.output()).toMatch(/^control plane NATS JetStream nats:\/\/127\.0\.0\.1:\d+ /m);
    const out = await new Promise<{ code: number; stdout: string }>((resolve) =>
      execFile(process.execPath, [join(ROOT, "scripts/purge.ts"), "--config", join(state, "cdn.toml"), "--all", "--soft", "--wait", "--timeout", "30"], { timeout: 60_000 }, (err, stdout) =>
        resolve({ code: err ? 1 : 0, stdout }),
      ),
    );
    expect(out.code).toBe(0);
    expect(out.stdout.split("\n").slice(1, 4)).toEqual(["ok   as-sin", "ok   eu-lon", "ok   na-sfo"]);
  });
});
