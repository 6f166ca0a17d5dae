/**
 * `npm start` as a newcomer meets it: the printed "how to test the CDN" commands, run with the real dig and curl.
 * Ports are 0 (free ones) so the test never collides with a running CDN.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, startNodeScript, type Running } from "../../src/node/children.ts";

let cdn: Running;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  const state = mkdtempSync(join(tmpdir(), "parrot-start-"));
  cdn = await startNodeScript(
    "scripts/start.ts",
    ["--port", String(await freePort()), "--https-port", String(await freePort()), "--origin-port", "0", "--dns-port", "0", "--doh-port", "0", "--state-dir", state],
    /Ctrl-C stops everything/,
    90_000,
  );
});
afterAll(async () => cdn?.stop());

/** The printed command lines that start with `command`. */
function printed(command: string): string[] {
  return cdn
    .output()
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith(command));
}

/** Runs a printed shell line (with its `| grep …`) as the user would. */
function sh(line: string): string {
  return execFileSync("bash", ["-c", line], { encoding: "utf8", timeout: 20_000 });
}

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
