/**
 * Runs Debian's rsync to list a mirror's module for the redirector (`[[mirrors]] rsync`): `rsync --list-only -r`,
 * bounded in time (rsync's own --contimeout/--timeout, and a kill after the scan's deadline) and in output (a listing
 * past MAX_LISTING_BYTES is refused rather than held). Without rsync installed the redirector scans over HTTP only.
 */
import { spawn, spawnSync } from "node:child_process";

const MAX_LISTING_BYTES = 256 * 1024 * 1024;

/** Whether an rsync binary answers here. */
export function rsyncInstalled(): boolean {
  return spawnSync("rsync", ["--version"], { stdio: "ignore" }).status === 0;
}

/** The module's recursive listing as rsync prints it; rejects with rsync's own words when it fails. */
export function listRsyncModule(url: string, timeoutMs: number): Promise<string> {
  const seconds = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
  return new Promise((resolve, reject) => {
    const child = spawn("rsync", ["--list-only", "-r", "--no-motd", `--contimeout=${seconds}`, `--timeout=${seconds}`, url.endsWith("/") ? url : `${url}/`], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    let bytes = 0;
    let err = "";
    let failure: string | undefined;
    // A whole listing may take longer than one request: ten deadlines, then it is given up.
    const timer = setTimeout(() => ((failure = "timed out"), child.kill("SIGKILL")), timeoutMs * 10);
    child.stdout.on("data", (d: Buffer) => {
      bytes += d.length;
      if (bytes > MAX_LISTING_BYTES) {
        failure = `listing larger than ${MAX_LISTING_BYTES} bytes`;
        child.kill("SIGKILL");
      } else out.push(d);
    });
    child.stderr.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    child.on("error", (e) => ((failure ??= e.message), undefined));
    child.on("close", (code) => {
      clearTimeout(timer);
      if (failure || code !== 0) return reject(new Error(`rsync ${url}: ${failure ?? `exit ${code}: ${err.trim().split("\n")[0] ?? ""}`}`));
      resolve(Buffer.concat(out).toString("utf8"));
    });
  });
}
