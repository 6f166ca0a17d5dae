/**
 * For the front door's e2e tests: an edge box (`node scripts/edge.ts` with [[sites]], so HAProxy in front of
 * workerd) on free loopback ports, and the real clients that talk to it (curl, openssl s_client).
 */
import { execFile } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { serveFetch, type FetchHandler, type Served } from "../../src/node/serve-fetch.ts";

export interface EdgeBox {
  dir: string;
  running: Running;
  httpPort: number;
  httpsPort: number;
  /** The workerd behind it. */
  workerdUrl: string;
  /** JSON lines the box printed so far (edge access log and front door events). */
  events(): Record<string, unknown>[];
  stop(): Promise<void>;
}

/** Runs a command; resolves with stdout, stderr and the exit code, never rejects. */
export function run(cmd: string, args: string[], timeoutMs = 30_000, input?: string): Promise<{ out: string; err: string; code: number }> {
  return new Promise((done) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      done({ out: stdout, err: stderr, code });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/**
 * Starts an edge box from `toml` (an [edge] table is added when missing: `origin`, a store in the box's folder).
 * `{dir}` in the text becomes the box's temporary folder. `origin` as a handler: served here for this box alone (and
 * stopped with it).
 */
export async function startEdgeBox(toml: string, opts: { origin?: string | FetchHandler; dir?: string } = {}): Promise<EdgeBox> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "parrot-fd-"));
  const served: Served | undefined = typeof opts.origin === "function" ? await serveFetch(opts.origin) : undefined;
  const cleanUp = async () => {
    await served?.close();
    if (!opts.dir) rmSync(dir, { recursive: true, force: true });
  };
  let text = toml.replaceAll("{dir}", dir);
  if (!/^\[edge\]/m.test(text)) {
    text = `[edge]\nname = "fd-test"\norigin = "${served?.url ?? opts.origin}"\nstore_dir = "${dir}/store"\n${text}`;
  }
  writeFileSync(join(dir, "cdn.toml"), text);
  let running: Running;
  try {
    running = await startNodeScript(
      "scripts/edge.ts",
      ["--config", join(dir, "cdn.toml"), "--host", "127.0.0.1", "--port", "0", "--https-port", "0"],
      /edge ready: /,
      90_000,
    );
  } catch (err) {
    await cleanUp();
    throw err;
  }
  const line = /front door: https:\/\/127\.0\.0\.1:(\d+) \(HTTPS, h2\) and http:\/\/127\.0\.0\.1:(\d+), \d+ sites -> workerd (\S+)/.exec(running.output());
  if (!line) {
    await running.stop();
    await cleanUp();
    throw new Error(`no front door line:\n${running.output()}`);
  }
  return {
    dir,
    running,
    httpsPort: Number(line[1]),
    httpPort: Number(line[2]),
    workerdUrl: line[3]!,
    events: () => {
      // Complete lines only (the last may still be being written), and only those that parse: the box's stdout and
      // stderr share one buffer, so a chunk of one can land inside a line of the other.
      const lines = running.output().split("\n").slice(0, -1);
      const events: Record<string, unknown>[] = [];
      for (const l of lines) {
        if (!l.startsWith("{")) continue;
        try {
          events.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          // an interleaved line (see above)
        }
      }
      return events;
    },
    async stop() {
      await running.stop();
      await cleanUp();
    },
  };
}

/** curl through the box's HTTPS port as `name` (SNI and Host), trusting `ca`; returns curl's stdout and exit code. */
export function curlHttps(box: EdgeBox, name: string, path: string, ca: string, extra: string[] = []) {
  return run("curl", ["-sS", "--cacert", ca, "--resolve", `${name}:${box.httpsPort}:127.0.0.1`, ...extra, `https://${name}:${box.httpsPort}${path}`]);
}

/** The certificate the box presents for `servername` (SNI), as openssl s_client receives it. */
export async function presentedCertificate(port: number, servername?: string): Promise<X509Certificate> {
  const args = ["s_client", "-connect", `127.0.0.1:${port}`, "-showcerts"];
  if (servername) args.push("-servername", servername);
  const r = await run("openssl", args, 20_000, "");
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.out)?.[0];
  if (!pem) throw new Error(`openssl s_client got no certificate:\n${r.out}${r.err}`);
  return new X509Certificate(pem);
}

/** Chromium's --ignore-certificate-errors-spki-list value for a certificate: base64 SHA-256 of its public key. */
export function spkiHash(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("base64");
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (bounded) until a download's file holds bytes: the transfer is under way, whatever the machine's load. */
export async function downloadStarted(file: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(existsSync(file) && statSync(file).size > 0)) {
    if (Date.now() > deadline) throw new Error(`${file} got no bytes in ${ms} ms`);
    await sleep(50);
  }
}
