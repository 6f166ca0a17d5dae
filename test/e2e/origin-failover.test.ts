/**
 * Origin failover at a real edge process: several origins with priorities; a dead primary sends requests to the
 * backup without an error reaching the client; with every origin dead, the cache answers STALE.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { ScriptedOrigin } from "../support/scripted-origin.ts";

const primary = new ScriptedOrigin();
const backup = new ScriptedOrigin();
let primaryServer: Served;
let backupServer: Served;
let edge: Running;
let base: string;

beforeAll(async () => {
  primaryServer = await serveFetch(primary.handle);
  backupServer = await serveFetch(backup.handle);
  const dir = mkdtempSync(join(tmpdir(), "parrot-failover-"));
  const config = join(dir, "cdn.toml");
  writeFileSync(
    config,
    `[edge]
name = "failover"
origin_timeout_ms = 2000
origin_max_fails = 1
origin_fail_timeout = 30
origins = [ { url = "${primaryServer.url}" }, { url = "${backupServer.url}", priority = 1 } ]
`,
  );
  edge = await startNodeScript("scripts/edge.ts", ["--config", config, "--port", "0"], /edge ready: (\S+)/);
  base = edge.match[1]!;
});

afterAll(async () => {
  await edge?.stop();
  await Promise.allSettled([primaryServer?.close(), backupServer?.close()]);
});

describe("origin failover", () => {
  it("serves from the primary while it is up", async () => {
    primary.set("/a", { headers: { "cache-control": "max-age=60" }, body: "from primary" });
    backup.set("/a", { headers: { "cache-control": "max-age=60" }, body: "from backup" });
    expect(await (await fetch(`${base}/a`)).text()).toBe("from primary");
  });

  it("sends requests to the backup when the primary is down, with no error for the client", async () => {
    await primaryServer.close();
    backup.set("/b", { headers: { "cache-control": "max-age=1, stale-if-error=600" }, body: "from backup" });
    const res = await fetch(`${base}/b`);
    expect([res.status, await res.text(), res.headers.get("x-cache-status")]).toEqual([200, "from backup", "MISS"]);
    expect(backup.hitsOf("/b")).toBe(1);
  });

  it("answers STALE from the cache when every origin is down", async () => {
    await backupServer.close();
    await new Promise((r) => setTimeout(r, 2200)); // let /b's max-age=1 run out
    const res = await fetch(`${base}/b`);
    expect([res.status, await res.text(), res.headers.get("x-cache-status")]).toEqual([200, "from backup", "STALE"]);
    expect(res.headers.get("cache-status")).toContain("detail=stale-if-error");
  });
});
