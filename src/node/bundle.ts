/** Bundles a worker entry (TypeScript, npm dependencies, cdn.toml as text) into one ES module for workerd. */
import { build } from "esbuild";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * Writes `dist/<name>.js` from `entry` (relative to the project root) and returns its path. The file is replaced
 * atomically (written aside, then renamed): several processes starting at once never read a half-written bundle.
 */
export async function bundleWorker(entry: string, name: string): Promise<string> {
  const outfile = resolve(ROOT, "dist", `${name}.js`);
  mkdirSync(dirname(outfile), { recursive: true });
  const result = await build({
    entryPoints: [resolve(ROOT, entry)],
    outfile,
    write: false,
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: ["node:*", "cloudflare:*"],
    loader: { ".toml": "text", ".mmdb": "binary" },
    logLevel: "warning",
  });
  const aside = `${outfile}.${process.pid}.tmp`;
  writeFileSync(aside, result.outputFiles[0]!.contents);
  renameSync(aside, outfile);
  return outfile;
}
