/**
 * npm run fn -- deploy --config cdn.toml --site ID path/to/worker.ts [--pid-file FILE]…
 *              list     --config cdn.toml
 *              rollback --config cdn.toml --site ID [--to vN] [--pid-file FILE]…
 *              dev      path/to/worker.ts [--edge URL] [--port 8788] [--client-ip ADDR] [--config cdn.toml]
 *              cf       [--client-ip ADDR] [--out FILE] [--config cdn.toml]
 *
 * deploy bundles the Worker (esbuild, as wrangler does), checks that it loads in workerd, stores it as the next
 * version of the `[[functions]]` entry `--site` names (`<config dir>/.parrot/functions/<id>/`) and makes it current;
 * rollback makes the version before the current one (or --to) current. Both then send SIGHUP to the edge box (its pid
 * file: --pid-file, default <store_dir>/.run/edge.pid), which restarts that function's process on the new code.
 * list shows each function's versions and the live one. dev runs a Worker under Miniflare in front of an edge (or
 * any URL), with request.cf from the project's GeoIP data (docs/functions.md). cf writes that request.cf as JSON
 * (default .wrangler/cf.json): `npm run dev` hands it to wrangler dev (CLOUDFLARE_CF_FETCH_PATH), which then asks
 * Cloudflare for nothing.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { bundleModule } from "../src/node/bundle.ts";
import { configPath, loadConfigFile } from "../src/node/config-file.ts";
import { wranglerCompat } from "../src/node/edge-host.ts";
import { addVersion, listVersions, previousVersion, setCurrent } from "../src/node/function-versions.ts";
import { validateFunction } from "../src/node/functions-host.ts";
import { localCf, runFunctionDev } from "../src/node/function-dev.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    config: { type: "string", default: "cdn.toml" },
    site: { type: "string" },
    to: { type: "string" },
    "pid-file": { type: "string", multiple: true },
    edge: { type: "string" },
    port: { type: "string", default: "8788" },
    "client-ip": { type: "string" },
    out: { type: "string", default: ".wrangler/cf.json" },
  },
});

function usage(message: string): never {
  console.error(`fn: ${message}`);
  console.error("usage: npm run fn -- deploy|list|rollback|dev … (see scripts/fn.ts, docs/functions.md)");
  process.exit(2);
}

const [command, ...rest] = positionals;

if (command === "cf") {
  const cf = await localCf(existsSync(values.config!) ? values.config : undefined, values["client-ip"]);
  mkdirSync(dirname(resolve(values.out!)), { recursive: true });
  writeFileSync(values.out!, JSON.stringify(cf, null, 2));
  console.log(`fn: request.cf for ${values["client-ip"] ?? "81.2.69.142"} written to ${values.out}`);
} else if (command === "dev") {
  if (!rest[0]) usage("dev needs the Worker's file");
  await runFunctionDev({ module: resolve(rest[0]), edge: values.edge, port: Number(values.port), clientIp: values["client-ip"], config: existsSync(values.config!) ? values.config : undefined });
} else {
  const file = loadConfigFile(values.config!);
  const fnFor = () => {
    if (!values.site) usage(`${command} needs --site ID (a [[functions]] id of ${file.path})`);
    const fn = file.config.functions.find((f) => f.id === values.site);
    if (!fn) usage(`${file.path} has no [[functions]] entry with id "${values.site}" (ids: ${file.config.functions.map((f) => f.id).join(", ") || "none"})`);
    return fn;
  };
  /** The edge box(es) to tell: SIGHUP makes them load the current version. */
  const reloadBoxes = () => {
    const pidFiles = values["pid-file"] ?? (file.config.edge ? [resolve(configPath(file, file.config.edge.store_dir), ".run", "edge.pid")] : []);
    let told = 0;
    for (const pf of pidFiles) {
      const pid = existsSync(pf) ? Number(readFileSync(pf, "utf8").trim()) : NaN;
      try {
        if (pid > 0) {
          process.kill(pid, "SIGHUP");
          console.log(`fn: edge box pid ${pid} (${pf}) reloads`);
          told++;
        }
      } catch {
        console.error(`fn: ${pf} names pid ${pid}, which is not running`);
      }
    }
    if (!told) console.log("fn: no running edge box found (--pid-file): the version goes live at its next start or kill -HUP");
  };

  if (command === "deploy") {
    const fn = fnFor();
    if (!rest[0]) usage("deploy needs the Worker's file");
    const entry = resolve(rest[0]);
    let code: Uint8Array;
    try {
      code = await bundleModule(entry);
    } catch (err) {
      usage(`${entry} does not bundle: ${(err as Error).message}`);
    }
    const problem = await validateFunction(code, fn, wranglerCompat());
    if (problem) usage(`${entry} does not load in workerd, nothing deployed:\n${problem}`);
    const v = addVersion(file, fn.id, code, entry);
    console.log(`fn: ${fn.id} ${v.version} (${v.bytes} bytes from ${entry}) is current`);
    reloadBoxes();
  } else if (command === "rollback") {
    const fn = fnFor();
    const to = values.to ?? previousVersion(file, fn.id);
    if (!to) usage(`${fn.id} has no version before the current one to roll back to`);
    try {
      setCurrent(file, fn.id, to);
    } catch (err) {
      usage((err as Error).message);
    }
    console.log(`fn: ${fn.id} ${to} is current`);
    reloadBoxes();
  } else if (command === "list") {
    for (const fn of file.config.functions) {
      const { versions, current } = listVersions(file, fn.id);
      console.log(`${fn.id}  hosts ${fn.hosts.join(", ")}${fn.path !== "/" ? ` path ${fn.path}` : ""}  on_error ${fn.on_error}  live: ${current ?? `${fn.module} (bundled at start)`}`);
      for (const v of versions) console.log(`  ${v.version === current ? "*" : " "} ${v.version}  ${v.at}  ${v.bytes} bytes  ${v.from}`);
    }
    if (!file.config.functions.length) console.log(`${file.path} has no [[functions]]`);
  } else {
    usage(command ? `unknown command ${command}` : "a command is needed");
  }
}
