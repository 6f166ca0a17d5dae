/** For the DNS e2e tests: a real `node scripts/dns.ts` on free loopback ports with a temp config, and a client runner. */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { TEST_ZONE_TOML } from "./dns-zone.ts";

const repo = resolve(import.meta.dirname, "../..");
const fixtures = join(repo, "test/fixtures");

/** The MaxMind test databases (the ASN path is relative: the node resolves it from the config file's folder). */
export const GEOIP_TOML = `
[geoip]
city = "${fixtures}/GeoIP2-City-Test.mmdb"
asn = "GeoLite2-ASN-Test.mmdb"
`;

/** Response rate limiting off: these tests send floods from one address (dns-rrl.test.ts turns it on). */
export const RRL_OFF_TOML = `
[dns.rrl]
rate = 0
`;

export const ZONE_TOML = `${TEST_ZONE_TOML}${GEOIP_TOML}${RRL_OFF_TOML}`;

export interface DnsNode {
  dir: string;
  config: string;
  cert?: string;
  dnsPort: number;
  httpPort: number;
  tlsPort?: number;
  dotPort?: number;
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  stop(): Promise<void>;
}

/** Runs a command; resolves with stdout+stderr and the exit code, never rejects. */
export function run(cmd: string, args: string[], timeoutMs = 20_000): Promise<{ out: string; code: number }> {
  return new Promise((done) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      done({ out: `${stdout}${stderr}`, code });
    });
  });
}

/** Makes a self-signed certificate for localhost and 127.0.0.1 in `dir` (cert.pem, key.pem). */
/**
 * A UDP dig answered by a worker process alone (the primary stopped meanwhile), retried until `done` holds (a change
 * reaches the workers over IPC after the primary's HTTP answer); the last output.
 */
export async function fromWorker(
  node: DnsNode,
  dig: (...args: string[]) => Promise<{ out: string }>,
  done: (out: string) => boolean,
  ...args: string[]
): Promise<string> {
  let out = "";
  for (let i = 0; i < 40; i++) {
    process.kill(node.child.pid!, "SIGSTOP");
    try {
      out = (await dig(...args)).out;
    } finally {
      process.kill(node.child.pid!, "SIGCONT");
    }
    if (done(out)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return out;
}

export async function makeCert(dir: string): Promise<string> {
  const cert = join(dir, "cert.pem");
  const made = await run("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout", join(dir, "key.pem"), "-out", cert,
  ]);
  if (made.code !== 0) throw new Error(`openssl failed: ${made.out}`);
  return cert;
}

export interface DnsNodeOptions {
  /** TLS: a self-signed localhost certificate; DoH over TLS and DoT listen. */
  tls?: boolean;
  /** With `tls`: the TLS listeners asked for on the command line (default both). */
  tlsListeners?: ("https" | "dot")[];
  workers?: number;
  /** The config instead of ZONE_TOML (files it names relative to the node's temp folder are copied there by `files`). */
  toml?: string;
  extraToml?: string;
  /** Files to write into the node's folder before it starts. */
  files?: Record<string, string | Buffer>;
  /** Start again in this folder (a node stopped with `kill`): its cdn.toml and what it kept there stay as they are. */
  dir?: string;
}

/** Starts the DNS node; with `tls`, makes a self-signed localhost certificate first. */
export async function startDnsNode(opts: DnsNodeOptions = {}): Promise<DnsNode> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "parrot-dns-"));
  // The ASN path is relative: the host resolves it from the config file's folder.
  copyFileSync(join(fixtures, "GeoLite2-ASN-Test.mmdb"), join(dir, "GeoLite2-ASN-Test.mmdb"));
  for (const [name, content] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), content);
  let toml = opts.toml ?? ZONE_TOML;
  let cert: string | undefined;
  if (opts.tls) {
    cert = await makeCert(dir);
    toml = toml.replace('hostmaster = "hostmaster.example.org"', 'hostmaster = "hostmaster.example.org"\ntls_cert = "cert.pem"\ntls_key = "key.pem"');
  }
  if (!opts.dir) writeFileSync(join(dir, "cdn.toml"), toml + (opts.extraToml ?? ""));
  const args = ["scripts/dns.ts", "--config", join(dir, "cdn.toml"), "--port", "0", "--dns-port", "0"];
  const tlsListeners = opts.tls ? (opts.tlsListeners ?? ["https", "dot"]) : [];
  for (const l of tlsListeners) args.push(l === "https" ? "--tls-port" : "--dot-port", "0");
  if (opts.workers) args.push("--workers", String(opts.workers));
  const child = spawn(process.execPath, args, { cwd: repo, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  const want = 2 + tlsListeners.length;
  await new Promise<void>((ok, fail) => {
    child.stdout!.on("data", (d) => {
      out += d;
      if ((out.match(/^dns (udp\+tcp|http|https|dot) /gm) ?? []).length >= want) ok();
    });
    child.once("exit", (code) => fail(new Error(`dns node exited ${code}: ${out}${err}`)));
  });
  const port = (kind: string) => Number(new RegExp(`^dns ${kind} 127\\.0\\.0\\.1:(\\d+)`, "m").exec(out)?.[1]);
  return {
    dir,
    config: join(dir, "cdn.toml"),
    cert,
    dnsPort: port("udp\\+tcp"),
    httpPort: port("http"),
    tlsPort: tlsListeners.includes("https") ? port("https") : undefined,
    dotPort: tlsListeners.includes("dot") ? port("dot") : undefined,
    child,
    stdout: () => out,
    stderr: () => err,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
