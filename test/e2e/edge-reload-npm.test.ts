/**
 * Reloading a box started with `npm run edge`, the documented way: `kill -HUP $(cat <store>/.run/edge.pid)` reaches
 * the node process (npm itself dies of SIGHUP), and the changed config applies. A SIGHUP sent to npm by mistake
 * leaves no orphan: the box notices npm is gone and stops, its workerd processes with it. The systemd unit's
 * ExecStart and ExecReload, run as systemd would (ExecReload with $MAINPID), reload too.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, startNodeScript } from "../../src/node/children.ts";
import { procStat } from "../../src/node/npm-parent.ts";
import { endWithThisProcess, stopProcess } from "../../src/node/process.ts";
import { serveFetch, type Served } from "../../src/node/serve-fetch.ts";
import { until } from "../support/control-cdn.ts";

let a: Served;
let b: Served;
let dir: string;
let config: string;
let pidFile: string;
let npm: ChildProcess;
let out = "";
let base: string;

const toml = (origin: string) => `[edge]\nname = "npm-reload"\norigin = "${origin}"\naccess_log = false\n`;
const alive = (pid: number) => {
  const s = procStat(pid);
  return s !== undefined && s.state !== "Z";
};

beforeAll(async () => {
  a = await serveFetch(() => new Response("from a\n"));
  b = await serveFetch(() => new Response("from b\n"));
  dir = mkdtempSync(join(tmpdir(), "parrot-npm-reload-"));
  config = join(dir, "cdn.toml");
  pidFile = join(dir, "store", ".run", "edge.pid");
  writeFileSync(config, toml(a.url));
  npm = spawn("npm", ["run", "edge", "--", "--config", config, "--port", "0", "--store", join(dir, "store")], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  endWithThisProcess(npm, true);
  npm.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  npm.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  base = await until("npm run edge is ready", async () => /edge ready: (\S+)/.exec(out)?.[1], 60_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${out}`);
  });
}, 90_000);

afterAll(async () => {
  if (npm) await stopProcess(npm, { group: true });
  await Promise.allSettled([a?.close(), b?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const body = () => fetch(`${base}/plain`).then((r) => r.text(), (e: Error) => `error: ${e.message}`);

describe("npm run edge", () => {
  it("reloads a changed config with the documented kill -HUP $(cat <store>/.run/edge.pid)", async () => {
    expect(await body()).toBe("from a\n");
    const edgePid = Number(readFileSync(pidFile, "utf8"));
    expect(edgePid).not.toBe(npm.pid);
    expect(out).toContain(`edge pid ${edgePid} (in ${pidFile}): kill -HUP ${edgePid} reloads ${config}`);
    writeFileSync(config, toml(b.url));
    execFileSync("bash", ["-c", `kill -HUP $(cat ${pidFile})`]);
    await until("the reload line", async () => (/edge reload: \S+ applied/.test(out) ? true : undefined), 10_000);
    // The workers read the config file again within a second.
    expect(await until("the new origin answers", async () => ((await body()) === "from b\n" ? true : undefined), 10_000)).toBe(true);
    expect(alive(npm.pid!)).toBe(true);
    expect(alive(edgePid)).toBe(true);
  });

  it("stops, workerd and all, when a SIGHUP meant as a reload goes to npm instead", async () => {
    // The box's node process, found in npm's process group (npm → sh -c → node scripts/edge.ts).
    const edgePid = Number(
      execFileSync("ps", ["-o", "pid=,args=", "-g", String(npm.pid)], { encoding: "utf8" })
        .split("\n")
        .find((l) => /^\s*\d+ \S*node \S*scripts\/edge\.ts/.test(l))!
        .trim()
        .split(" ")[0],
    );
    const workerd = /workerd pids: ([\d ]+)/.exec(out)![1]!.trim().split(" ").map(Number);
    expect(workerd.every(alive)).toBe(true);
    process.kill(npm.pid!, "SIGHUP");
    await until("npm exits", async () => (alive(npm.pid!) ? undefined : true), 10_000);
    await until("the box stops", async () => (alive(edgePid) ? undefined : true), 30_000).catch((err: Error) => {
      throw new Error(`${err.message}; the edge (pid ${edgePid}) outlived npm\n${out}`);
    });
    expect(out).toMatch(/edge: npm \(pid \d+\), which ran this box, has exited; stopping/);
    await until("its workerd processes stop", async () => (workerd.some(alive) ? undefined : true), 10_000);
    expect(await body()).toMatch(/^error: /);
    expect(existsSync(pidFile)).toBe(false);
  }, 60_000);
});

describe("the systemd unit (scripts/systemd-unit.ts)", () => {
  it("runs node itself, so its ExecReload (kill -HUP $MAINPID) applies a changed config", async () => {
    const unitDir = mkdtempSync(join(tmpdir(), "parrot-unit-"));
    const unitConfig = join(unitDir, "cdn.toml");
    const text = (origin: string) => `${toml(origin)}store_dir = "${join(unitDir, "store")}"\n`;
    writeFileSync(unitConfig, text(a.url));
    const unit = execFileSync(process.execPath, [join(ROOT, "scripts/systemd-unit.ts"), "--config", unitConfig, "--dir", ROOT, "--host", "127.0.0.1", "--port", "0"], { encoding: "utf8" });
    const execStart = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(" ");
    const execReload = /^ExecReload=(.*)$/m.exec(unit)![1]!;
    expect(execStart[0]).toBe(join(ROOT, "node_modules/.bin/node"));
    expect(execStart[1]).toBe("scripts/edge.ts");
    // The same node as the unit's (this test's), so startNodeScript runs exactly ExecStart's arguments.
    const box = await startNodeScript(execStart[1]!, execStart.slice(2), /edge ready: (\S+)/, 60_000);
    try {
      const get = () => fetch(`${box.match[1]}/plain`).then((r) => r.text());
      expect(await get()).toBe("from a\n");
      writeFileSync(unitConfig, text(b.url));
      execFileSync("bash", ["-c", execReload.replace("$MAINPID", String(box.proc.pid))]);
      expect(await until("the unit's box follows the new config", async () => ((await get()) === "from b\n" ? true : undefined), 10_000)).toBe(true);
      expect(alive(box.proc.pid!)).toBe(true);
    } finally {
      await box.stop();
      rmSync(unitDir, { recursive: true, force: true });
    }
  }, 90_000);

  it("logs to the parrot-cdn journal namespace, whose settings keep [privacy] log_retention_days in daily files", () => {
    const unitDir = mkdtempSync(join(tmpdir(), "parrot-unit-"));
    const unitConfig = join(unitDir, "cdn.toml");
    writeFileSync(unitConfig, `${toml(a.url)}store_dir = "${join(unitDir, "store")}"\n\n[privacy]\nlog_retention_days = 3\n`);
    const run = (...more: string[]) => execFileSync(process.execPath, [join(ROOT, "scripts/systemd-unit.ts"), "--config", unitConfig, "--dir", ROOT, ...more], { encoding: "utf8" });
    try {
      expect(run()).toMatch(/^LogNamespace=parrot-cdn$/m);
      const journald = run("--journald");
      expect(journald).toMatch(/^\[Journal\]$/m);
      expect(journald).toMatch(/^MaxRetentionSec=3day$/m);
      expect(journald).toMatch(/^MaxFileSec=1day$/m);
    } finally {
      rmSync(unitDir, { recursive: true, force: true });
    }
  });
});
