/**
 * For the `npm start` tests: scripts/start.ts on free ports with its own state directory, the command lines it
 * prints, and those lines run as a user would (bash, the real dig and curl).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNodeScript, type Running } from "../../src/node/children.ts";
import { freePort } from "./ports.ts";

export interface StartedCdn {
  run: Running;
  state: string;
  port: number;
  httpsPort: number;
  http3Port: number;
  stop(): Promise<void>;
}

/** Runs `npm start` (scripts/start.ts) until it has printed its checks; `env` replaces the environment. */
export async function startNpmStart(opts: { env?: NodeJS.ProcessEnv; args?: string[] } = {}): Promise<StartedCdn> {
  const state = mkdtempSync(join(tmpdir(), "parrot-start-"));
  const [port, httpsPort, http3Port] = [await freePort(), await freePort(), await freePort()];
  try {
    const run = await startNodeScript(
      "scripts/start.ts",
      ["--port", String(port), "--https-port", String(httpsPort), "--http3-port", String(http3Port), "--origin-port", "0", "--dns-port", "0", "--doh-port", "0", "--redirector-port", "0", "--state-dir", state, ...(opts.args ?? [])],
      /Ctrl-C stops everything/,
      120_000,
      undefined,
      opts.env,
    );
    return {
      run,
      state,
      port,
      httpsPort,
      http3Port,
      async stop() {
        await run.stop();
        rmSync(state, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(state, { recursive: true, force: true });
    throw err;
  }
}

/** The printed command lines that start with `command`. */
export function printed(cdn: StartedCdn, command: string): string[] {
  return cdn.run
    .output()
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith(command));
}

/** Runs printed shell lines (with their `| grep …`) as the user would, in `cwd`. */
export function sh(line: string, cwd = tmpdir()): string {
  return execFileSync("bash", ["-c", line], { encoding: "utf8", timeout: 60_000, cwd });
}
