/**
 * `npm run nats-config`: the three configs it prints for a cdn.toml's `[control] servers` (loopback, three client
 * ports) run as a real nats-server cluster that JetStream answers on with three replicas, and an edge's
 * connection with [control]'s credentials works.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../src/node/children.ts";
import { loadConfigFile } from "../../src/node/config-file.ts";
import { connectOnce, ensureStreams } from "../../src/control/nats.ts";
import { controlNames } from "../../src/control/messages.ts";
import { until } from "../support/control-cdn.ts";
import { freePort } from "../support/ports.ts";

let dir: string;
let config: string;
let ports: number[] = [];
const servers: ChildProcess[] = [];

const free = (port: number) =>
  new Promise<boolean>((ok) => {
    const s = createServer();
    s.once("error", () => ok(false));
    s.listen(port, "127.0.0.1", () => s.close(() => ok(true)));
  });

/** A client port whose route (+2000) and monitoring (+4000) ports are free too. */
async function clusterPort(taken: number[]): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (p + 4000 > 65_535 || taken.some((t) => Math.abs(t - p) < 1 || Math.abs(t - p) === 2000 || Math.abs(t - p) === 4000)) continue;
    if ((await free(p + 2000)) && (await free(p + 4000))) return p;
  }
  throw new Error("no free port triple");
}

function natsConfig(...args: string[]) {
  return spawnSync(process.execPath, [join(ROOT, "scripts/nats-config.ts"), "--config", config, ...args], { encoding: "utf8", timeout: 20_000 });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "parrot-nats-config-"));
  for (let i = 0; i < 3; i++) ports.push(await clusterPort(ports));
  config = join(dir, "cdn.toml");
  writeFileSync(
    config,
    `[edge]\norigin = "http://127.0.0.1:1"\n[admin]\ntoken = "nats-config-admin-token-0123"\n[control]\n` +
      `servers = [${ports.map((p) => `"nats://127.0.0.1:${p}"`).join(", ")}]\nuser = "parrot"\npassword = "nats-config-password-0123"\nreplicas = 3\n`,
  );
}, 30_000);

afterAll(async () => {
  await Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((done) => {
          if (s.exitCode !== null || s.signalCode !== null) return done();
          s.once("exit", () => done());
          s.kill("SIGTERM");
        }),
    ),
  );
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("npm run nats-config", () => {
  it("prints configs that run as a three-server JetStream cluster the boxes' [control] reaches", async () => {
    for (const [i, port] of ports.entries()) {
      const r = natsConfig("--server", `127.0.0.1:${port}`, "--listen", "127.0.0.1", "--dir", join(dir, `n${i}`));
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`routes: [${ports.map((p) => `"nats-route://127.0.0.1:${p + 2000}"`).join(", ")}]`);
      const file = join(dir, `n${i}.conf`);
      writeFileSync(file, r.stdout);
      expect(spawnSync("nats-server", ["-c", file, "-t"], { encoding: "utf8" }).status).toBe(0);
      const proc = spawn("nats-server", ["-c", file], { stdio: ["ignore", "ignore", "ignore"] });
      servers.push(proc);
    }
    for (const port of ports) {
      await until(`nats-server ${port} healthy`, async () => {
        const res = await fetch(`http://127.0.0.1:${port + 4000}/healthz`).catch(() => undefined);
        return res?.ok ? true : undefined;
      }, 60_000);
    }
    const { config: cdn } = loadConfigFile(config);
    const nc = await connectOnce(cdn.control!, "nats-config-test");
    try {
      const info = await ensureStreams(await jetstreamManager(nc), cdn.control!, controlNames(cdn.control!.namespace));
      expect(info.config.num_replicas).toBe(3);
      expect(info.cluster?.replicas?.length).toBe(2);
    } finally {
      await nc.close();
    }
  }, 120_000);

  it("refuses a server that is not in [control] servers, naming the list", () => {
    const r = natsConfig("--server", "127.0.0.9:4222");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`nats-config: --server 127.0.0.9:4222: not one of [control] servers (nats://127.0.0.1:${ports[0]}`);
  });
});
