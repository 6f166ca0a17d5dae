/**
 * Pebble (Let's Encrypt's test CA, Debian package `pebble`) for the ACME tests: its own HTTPS certificate made here,
 * free loopback ports, DNS-01 lookups sent to a DNS node of the project (`-dnsserver`), no artificial validation delay.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDnsNode, type DnsNode } from "./dns-process.ts";
import { run } from "./frontdoor.ts";
import { freePort } from "./ports.ts";

interface Pebble {
  /** The ACME directory URL. */
  directory: string;
  /** Pebble's own HTTPS certificate (trust it to reach the directory). */
  tlsCertPath: string;
  /** The root that signs issued certificates (from pebble's management API), for clients of the sites. */
  rootPath: string;
  output(): string;
  stop(): Promise<void>;
}


/** Pebble with a DNS node of the project answering its DNS-01 lookups: the node an `[acme]` issuer publishes to. */
export interface AcmeCa extends Pebble {
  /** The DNS node (admin token as given); stop() stops it too. */
  dns: DnsNode;
  /** `[acme]` for this CA and node (directory, trust, contact, short timeouts), with `extra` lines. */
  acmeToml(extra?: string): string;
}

/** Starts a DNS node (`adminToken` for its challenge endpoint) and pebble sending its DNS-01 lookups there. */
export async function startAcmeCa(adminToken: string): Promise<AcmeCa> {
  const dns = await startDnsNode({ extraToml: `\n[admin]\ntoken = "${adminToken}"\n` });
  let pebble: Pebble;
  try {
    pebble = await startPebble(`127.0.0.1:${dns.dnsPort}`);
  } catch (err) {
    await dns.stop();
    throw err;
  }
  return {
    ...pebble,
    dns,
    acmeToml: (extra = "") => `[acme]
directory = "${pebble.directory}"
ca_bundle = "${pebble.tlsCertPath}"
email = "hostmaster@example.org"
dns_nodes = [ { url = "http://127.0.0.1:${dns.httpPort}", dns = "127.0.0.1:${dns.dnsPort}" } ]
propagation_timeout_seconds = 20
retry_min_seconds = 2
retry_max_seconds = 10
${extra}
`,
    async stop() {
      await pebble.stop();
      await dns.stop();
    },
  };
}

/** Starts pebble with `dnsServer` ("127.0.0.1:port") answering its DNS-01 lookups. */
async function startPebble(dnsServer: string): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), "parrot-pebble-"));
  const tlsCertPath = join(dir, "pebble.pem");
  const made = await run("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", "/CN=pebble", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout", join(dir, "pebble.key"), "-out", tlsCertPath,
  ]);
  if (made.code !== 0) throw new Error(`openssl: ${made.err}`);
  const [acmePort, mgmtPort] = [await freePort(), await freePort()];
  writeFileSync(
    join(dir, "pebble.json"),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: tlsCertPath,
        privateKey: join(dir, "pebble.key"),
        httpPort: await freePort(),
        tlsPort: await freePort(),
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
      },
    }),
  );
  const child: ChildProcess = spawn("pebble", ["-config", join(dir, "pebble.json"), "-dnsserver", dnsServer], {
    // No reuse of earlier authorizations (pebble reuses half of them by default): every order is validated anew.
    env: { ...process.env, PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0", PEBBLE_AUTHZREUSE: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 200 && !/ACME directory available/.test(out); i++) {
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!/ACME directory available/.test(out)) {
    await stop();
    throw new Error(`pebble did not start:\n${out}`);
  }
  const rootPath = join(dir, "root.pem");
  const root = await run("curl", ["-sS", "--cacert", tlsCertPath, "-o", rootPath, `https://127.0.0.1:${mgmtPort}/roots/0`]);
  if (root.code !== 0) {
    await stop();
    throw new Error(`pebble's root: ${root.err}`);
  }
  return { directory: `https://127.0.0.1:${acmePort}/dir`, tlsCertPath, rootPath, output: () => out, stop };
}
