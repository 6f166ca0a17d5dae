/**
 * Per-box NATS credentials: `npm run fleet -- keys` writes an nkey per box and one for the operator, the real
 * nats-server runs with the authorization nats-config generates from them, and two edge boxes (bare workerd) run
 * with their own keys. The boxes work (catch up, apply the operator's purge and fleet push, report); a box's key
 * cannot publish a purge (directly or through its edge's endpoint), write the rollout record or a config version,
 * another box's status, or change a stream; it can write its own status. A mirror redirector (`--redirector`) runs
 * with its own key: it shares its scans in the redirectors' bucket, and may write nothing else.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlClient } from "../../src/control/client.ts";
import { FleetKv } from "../../src/control/fleet-kv.ts";
import { connectOnce } from "../../src/control/nats.ts";
import { mirrorsLayout } from "../../src/redirector/shared-state.ts";
import { freePort } from "../support/ports.ts";
import { startRedirectorBox } from "../support/redirector.ts";
import { startControlCdn, type ControlCdn } from "../support/control-cdn.ts";
import { startKeyedNats, type KeyedNats } from "../support/nats.ts";

const EDGES = ["eu-lon", "na-sea"];
let dir: string;
let nats: KeyedNats;
let cdn: ControlCdn;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "parrot-creds-"));
  nats = await startKeyedNats(dir, ["--box", "eu-lon", "--box", "na-sea", "--redirector", "rd-1"], { edges: EDGES, mirrors: true });
  cdn = await startControlCdn({
    edges: EDGES,
    ...nats.cdnAuth(EDGES),
    control: "catch_up_timeout_ms = 10000\nfleet = true",
  });
}, 180_000);

afterAll(async () => {
  await cdn?.stop();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("per-box NATS credentials", () => {
  it("keys writes a seed per box and the operator, and the boxes run with theirs", async () => {
    expect(nats.keysOut).toMatch(/^box +eu-lon: .*eu-lon\.nk \(U[A-Z2-7]{55}\)$/m);
    expect(nats.keysOut).toMatch(/^operator +operator: /m);
    for (const e of EDGES) expect(cdn.running(e)!.output()).toMatch(/control: NATS JetStream .*; caught up at sequence/);
    const purge = await cdn.cli(["--all", "--soft", "--wait", "--timeout", "30"]);
    expect(purge.stdout).toMatch(/^ok +eu-lon$/m);
    expect(purge.stdout).toMatch(/^ok +na-sea$/m);
    expect(purge.code).toBe(0);
    const push = await cdn.fleet(["push", cdn.config, "--canary", "eu-lon", "--window", "0"]);
    expect(push.stderr).toBe("");
    expect(push.stdout).toMatch(/^ok +na-sea: applied \(runs version 1/m);
  }, 90_000);

  it("a box's key cannot publish a purge or a config, nor another box's status, nor change a stream", async () => {
    const cfg = nats.controlAs("eu-lon");
    const nc = await connectOnce(cfg, "test as eu-lon");
    const operator = await connectOnce(nats.controlAs("operator"), "test operator");
    try {
      const client = await ControlClient.open(nc, cfg, EDGES);
      const kv = await FleetKv.open(nc, cfg);
      const opKv = await FleetKv.open(operator, nats.controlAs("operator"));
      const before = (await (await ControlClient.open(operator, nats.controlAs("operator"), EDGES)).manager.streams.info("PARROT_CONTROL")).state.last_seq;
      const rollout = await opKv.get("rollout");
      await expect(client.publishPurge({ all: true })).rejects.toThrow(/not stored/);
      await expect(kv.put("rollout", JSON.stringify({ forged: true }))).rejects.toThrow();
      await expect(kv.put("config.99", "{}")).rejects.toThrow();
      await expect(kv.put("box.na-sea", "{}")).rejects.toThrow();
      expect(await kv.put("box.eu-lon", (await opKv.get("box.eu-lon"))!.value)).toBeGreaterThan(0);
      await expect(client.manager.streams.update("PARROT_CONTROL", { subjects: ["parrot.control.>", "parrot.presence.eu-lon"] })).rejects.toThrow();
      await expect(client.manager.streams.purge("PARROT_CONTROL")).rejects.toThrow();
      // Through its edge's endpoint (the box's agent holds the box's key): refused, nothing stored.
      const viaEdge = await cdn.purge("eu-lon", { all: true });
      expect(viaEdge.status).toBe(503);
      const opClient = await ControlClient.open(operator, nats.controlAs("operator"), EDGES);
      expect((await opClient.manager.streams.info("PARROT_CONTROL")).state.last_seq).toBe(before);
      expect((await opKv.get("rollout"))!.revision).toBe(rollout!.revision);
    } finally {
      await nc.close();
      await operator.close();
    }
  }, 90_000);

  it("a redirector's key shares its scans in the redirectors' bucket and may write nothing else", async () => {
    const key = nats.keyOf("rd-1");
    writeFileSync(
      join(dir, "redirector.toml"),
      `[admin]\ntoken = "redirector-creds-token"\n\n[control]\nservers = ["${nats.url}"]\nnkey = "${key}"\ncatch_up_timeout_ms = 10000\n\n` +
        `[redirector]\norigin = "http://127.0.0.1:9/"\ncdn = "http://127.0.0.1:9/"\npaths = ["/iso/**"]\nscan_timeout_ms = 1000\n\n` +
        `[[mirrors]]\nname = "m1"\nurl = "http://127.0.0.1:${await freePort()}/"\n`,
    );
    const { run: rd } = await startRedirectorBox(join(dir, "redirector.toml"), { name: "rd-1" });
    const cfg = nats.controlAs("rd-1");
    const nc = await connectOnce(cfg, "test as rd-1");
    const operator = await connectOnce(nats.controlAs("operator"), "test operator");
    try {
      expect(rd.output()).toMatch(/"state":"sharing scans"/);
      const opMirrors = await FleetKv.open(operator, nats.controlAs("operator"), undefined, mirrorsLayout("parrot"));
      expect(JSON.parse((await opMirrors.get("box.rd-1"))!.value)).toMatchObject({ box: "rd-1", state: "up" });
      expect(JSON.parse((await opMirrors.get("mirror.m1"))!.value)).toMatchObject({ box: "rd-1", mirror: "m1" });
      const mirrors = await FleetKv.open(nc, cfg, undefined, mirrorsLayout("parrot"));
      expect(await mirrors.put("mirror.m2", "{}")).toBeGreaterThan(0);
      await expect(mirrors.put("box.rd-2", "{}")).rejects.toThrow();
      await expect(mirrors.put("other.key", "{}")).rejects.toThrow();
      await expect((await FleetKv.open(nc, cfg)).put("box.rd-1", "{}")).rejects.toThrow();
      await expect((await ControlClient.open(nc, cfg, EDGES)).publishPurge({ all: true })).rejects.toThrow(/not stored/);
      await expect(FleetKv.open(nc, cfg, undefined, { bucket: "parrot_other", history: 1 })).rejects.toThrow();
    } finally {
      await nc.close();
      await operator.close();
      await rd.stop();
    }
  }, 90_000);
});
