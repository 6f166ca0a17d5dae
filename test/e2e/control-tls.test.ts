/**
 * The control plane over TLS (issue 22, item 6) with a real nats-server: its certificate made by openssl for
 * 127.0.0.1 and signed by a test CA, per-box nkeys. An edge box with `tls://` servers and `tls_ca` verifies the
 * server and runs (catches up, applies the operator's purge, heartbeats reach the DNS node); a client that trusts
 * another CA, or none (a `nats://` URL too: the server requires TLS), is refused.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectOnce } from "../../src/control/nats.ts";
import { startControlCdn, until, type ControlCdn } from "../support/control-cdn.ts";
import { run } from "../support/dns-process.ts";
import { startKeyedNats, type KeyedNats } from "../support/nats.ts";

const EDGES = ["eu-lon"];
let dir: string;
let nats: KeyedNats;
let cdn: ControlCdn;

const openssl = async (...args: string[]) => {
  const r = await run("openssl", args);
  if (r.code !== 0) throw new Error(`openssl ${args[0]}: ${r.out}`);
};

/** A CA (`<name>-ca.crt`); with `server`, a certificate for 127.0.0.1 and localhost it signed. */
async function makeCa(name: string, server: boolean) {
  const at = (f: string) => join(dir, f);
  await openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", `/CN=parrot test ${name} CA`, "-keyout", at(`${name}-ca.key`), "-out", at(`${name}-ca.crt`));
  if (!server) return;
  await openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", at("server.key"), "-out", at("server.csr"));
  await openssl(
    "x509", "-req", "-in", at("server.csr"), "-CA", at(`${name}-ca.crt`), "-CAkey", at(`${name}-ca.key`), "-CAcreateserial", "-days", "2",
    "-extfile", at("san.cnf"), "-out", at("server.crt"),
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "parrot-nats-tls-"));
  writeFileSync(join(dir, "san.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await makeCa("good", true);
  await makeCa("other", false);
  nats = await startKeyedNats(dir, ["--box", "eu-lon", "--dns", "ns1"], {
    tls: { cert: join(dir, "server.crt"), key: join(dir, "server.key") },
    edges: EDGES,
    operator: { tls_ca: join(dir, "good-ca.crt") },
  });
  cdn = await startControlCdn({
    edges: EDGES,
    ...nats.cdnAuth(EDGES, `tls_ca = "${join(dir, "good-ca.crt")}"`),
    control: "catch_up_timeout_ms = 10000\npresence_interval_ms = 500",
    dns: true,
  });
}, 180_000);

afterAll(async () => {
  await cdn?.stop();
  await nats?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("NATS over TLS", () => {
  it("a box that trusts the server's CA runs over TLS: catches up, applies a purge, its heartbeats reach the DNS node", async () => {
    expect(cdn.running("eu-lon")!.output()).toMatch(/control: NATS JetStream .*; caught up at sequence/);
    const purge = await cdn.cli(["--all", "--soft", "--wait", "--timeout", "30"]);
    expect(purge.stdout).toMatch(/^ok +eu-lon$/m);
    expect(purge.code).toBe(0);
    const heartbeat = await until("the DNS node hears eu-lon's heartbeats over TLS", async () => {
      const h = String((await cdn.dns!.statusJson()).edges.find((e) => e.name === "eu-lon")?.heartbeat);
      return h.startsWith("ok, ") ? h : undefined;
    }, 20_000);
    expect(heartbeat).toMatch(/^ok, /);
  }, 90_000);

  it("a client that trusts another CA, or no CA, is refused", async () => {
    await expect(connectOnce(nats.controlAs("operator", { tls_ca: join(dir, "other-ca.crt") }), "test wrong CA")).rejects.toThrow(/certificate|self.signed|verify/i);
    await expect(connectOnce(nats.controlAs("operator", {}), "test no CA")).rejects.toThrow(/certificate|self.signed|verify/i);
    // A nats:// URL gets no plain connection either: the server requires TLS, and without the CA it is not trusted.
    await expect(connectOnce(nats.controlAs("operator", { servers: [nats.url] }), "test plain")).rejects.toThrow(/certificate|verify/i);
    // The right CA still works (the refusals above were the CA's, not the server's).
    const nc = await connectOnce(nats.controlAs("operator", { tls_ca: join(dir, "good-ca.crt") }), "test right CA");
    expect(nc.info?.tls_required).toBe(true);
    await nc.close();
  }, 60_000);
});
