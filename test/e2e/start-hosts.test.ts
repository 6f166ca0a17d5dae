/**
 * `npm start -- --edge-hosts … --dns-host …`: the CDN on other addresses of this machine than 127.0.0.1–4 (here
 * 127.0.0.5–8; a LAN address works the same), with the director answering the edges' new addresses; an address
 * that is not this machine's is refused before anything starts, naming the flag.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../src/node/children.ts";
import { printed, sh, startNpmStart, type StartedCdn } from "../support/npm-start.ts";

const EDGES = ["127.0.0.5", "127.0.0.6", "127.0.0.7"];
let cdn: StartedCdn;

beforeAll(async () => {
  cdn = await startNpmStart({ args: ["--edge-hosts", EDGES.join(","), "--dns-host", "127.0.0.8"] });
}, 150_000);
afterAll(async () => {
  await cdn?.stop();
});

describe("npm start on other addresses", () => {
  it("runs each edge on its --edge-hosts address and the DNS node on --dns-host", async () => {
    expect(cdn.run.output()).toMatch(/^dns node +udp\+tcp 127\.0\.0\.8:\d+, DoH http:\/\/127\.0\.0\.8:\d+\/dns-query$/m);
    for (const [i, host] of EDGES.entries()) {
      const res = await fetch(`http://${host}:${cdn.port}/.well-known/cdn/health`);
      expect(`${res.status} ${(await res.text()).trim()}`).toBe(`200 ok ${["eu-lon", "na-sfo", "as-sin"][i]}`);
    }
  });

  it("has the director answer those addresses, and the printed curl check gets MISS, then HIT", () => {
    const answers = sh(printed(cdn, "dig @")[0]!).trim().split("\n").filter((l) => /^\d+\./.test(l));
    expect(answers).toHaveLength(2);
    for (const a of answers) expect(EDGES).toContain(a);
    const line = printed(cdn, "curl -sI")[0]!;
    expect(sh(line).trim()).toBe("x-cache-status: MISS");
    expect(sh(line).trim()).toBe("x-cache-status: HIT");
  });

  it("refuses an address that is not this machine's, before starting anything", () => {
    const state = mkdtempSync(join(tmpdir(), "parrot-start-bad-"));
    try {
      const r = spawnSync(process.execPath, [join(ROOT, "scripts/start.ts"), "--edge-hosts", "198.51.100.7", "--state-dir", state], { encoding: "utf8", timeout: 30_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/^start: --edge-hosts: 198\.51\.100\.7 is not an address of this machine \(it has 127\.0\.0\.0\/8, ::1/);
      expect(r.stdout).toBe("");
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });
});
