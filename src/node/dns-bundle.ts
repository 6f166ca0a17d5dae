/**
 * Runs the DNS node from JavaScript rather than TypeScript: Node's type stripping keeps its compiler (a WebAssembly
 * instance, about 13 MB) and every module's source resident for the life of a process, which is a fifth of a DNS node's
 * memory. The first start after a change bundles the node's entry (dns-main.ts) and its worker (dns-worker.ts) with
 * esbuild into dist/dns/ (npm packages stay external; modules imported dynamically go to chunks of their own); later starts find the bundle up to date by its inputs' times.
 * The starting process then replaces itself (execve: same PID for systemd, SIGHUP and tests) with
 * `node <DNS_NODE_FLAGS> dist/dns/dns-main.mjs <its arguments>`.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ROOT } from "./children.ts";

export const BUNDLE_DIR = resolve(ROOT, "dist/dns");
const ENTRIES = { "dns-main": "src/node/dns-main.ts", "dns-worker": "src/node/dns-worker.ts" };
/** The bundle's source files (relative to ROOT), written after the bundles: what "up to date" is checked against. */
const INPUTS = resolve(BUNDLE_DIR, "inputs.json");

/**
 * V8 flags of the node's processes (workers inherit them): the young generation's semi-space at 1 MB instead of up
 * to 16 MB. The node allocates little per query and keeps almost none of it, so a small nursery costs no measurable
 * CPU (docs/performance.md) and saves about 35 MB under load.
 */
export const DNS_NODE_FLAGS = ["--max-semi-space-size=1"];

/** The newest modification time among the inputs, or undefined when one is missing (or no list was written). */
function newestInput(): number | undefined {
  let inputs: string[];
  try {
    inputs = JSON.parse(readFileSync(INPUTS, "utf8")) as string[];
  } catch {
    return undefined;
  }
  let newest = 0;
  for (const f of inputs) {
    try {
      newest = Math.max(newest, statSync(resolve(ROOT, f)).mtimeMs);
    } catch {
      return undefined;
    }
  }
  return newest;
}

/** Whether every bundle is newer than all its inputs. */
export function bundleIsFresh(): boolean {
  const newest = newestInput();
  if (newest === undefined) return false;
  try {
    return Object.keys(ENTRIES).every((name) => statSync(resolve(BUNDLE_DIR, `${name}.mjs`)).mtimeMs >= newest);
  } catch {
    return false;
  }
}

/**
 * Writes dist/dns/dns-main.mjs and dns-worker.mjs (each atomically: written aside, then renamed, so processes starting
 * at once never read half a file), then the list of inputs.
 */
export async function buildDnsBundle(): Promise<void> {
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([name, src]) => [name, resolve(ROOT, src)])),
    outdir: BUNDLE_DIR,
    outExtension: { ".js": ".mjs" },
    write: false,
    bundle: true,
    splitting: true, // dynamic imports (the control plane's modules) stay in chunks of their own, loaded when used
    format: "esm",
    platform: "node",
    target: "node22",
    packages: "external",
    metafile: true,
    logLevel: "silent",
  });
  mkdirSync(BUNDLE_DIR, { recursive: true });
  for (const out of result.outputFiles) {
    const aside = `${out.path}.${process.pid}.tmp`;
    writeFileSync(aside, out.contents);
    renameSync(aside, out.path);
  }
  const inputs = Object.keys(result.metafile.inputs);
  const aside = `${INPUTS}.${process.pid}.tmp`;
  writeFileSync(aside, JSON.stringify(inputs));
  renameSync(aside, INPUTS);
  // Chunks of earlier builds (their names hash their content), once no process can still be starting from them.
  const current = new Set(result.outputFiles.map((o) => o.path));
  for (const f of readdirSync(BUNDLE_DIR)) {
    const path = resolve(BUNDLE_DIR, f);
    if (f.endsWith(".mjs") && !current.has(path) && statSync(path).mtimeMs < Date.now() - 60_000) rmSync(path, { force: true });
  }
}

/**
 * Replaces this process with the bundled node (building the bundle first when it is missing or older than a source
 * file); returns only when it cannot (no process.execve, or the build failed), with the reason, so the caller can run
 * the TypeScript sources instead.
 */
export async function execBundledDnsNode(): Promise<string> {
  if (typeof process.execve !== "function") return "this Node has no process.execve";
  try {
    if (!bundleIsFresh()) await buildDnsBundle();
  } catch (err) {
    return `bundling failed: ${(err as Error).message.split("\n")[0]}`;
  }
  const main = resolve(BUNDLE_DIR, "dns-main.mjs");
  try {
    process.execve(process.execPath, [process.execPath, ...DNS_NODE_FLAGS, ...process.execArgv, main, ...process.argv.slice(2)], process.env);
  } catch (err) {
    return `execve failed: ${(err as Error).message}`;
  }
  return "execve returned"; // not reached: execve replaces the process or throws
}

// `npm run build:dns` (and `npm ci`, after the native addon): bundle now rather than at the first start (an install
// the node's user cannot write to). A failure is reported, not fatal: the node then bundles or runs the sources.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    await buildDnsBundle();
    process.stdout.write(`dns-bundle: built ${BUNDLE_DIR}\n`);
  } catch (err) {
    process.stderr.write(`dns-bundle: not built (${(err as Error).message.split("\n")[0]}); the DNS node will try again when it starts\n`);
  }
}
