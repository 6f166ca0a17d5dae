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
  const aside = `${outfile}.${process.pid}.tmp`;
  writeFileSync(aside, await bundleModule(resolve(ROOT, entry)));
  renameSync(aside, outfile);
  return outfile;
}

/**
 * One ES module for workerd from an entry (absolute path), as wrangler bundles a Worker: npm dependencies inlined,
 * `node:*` and `cloudflare:*` left to the runtime; `external` names imports left as they are (another module).
 */
export async function bundleModule(entry: string, external: string[] = []): Promise<Uint8Array> {
  const result = await build({
    entryPoints: [entry],
    write: false,
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: ["node:*", "cloudflare:*", ...external],
    loader: { ".toml": "text", ".mmdb": "binary" },
    logLevel: "silent",
  });
  return result.outputFiles[0]!.contents;
}
