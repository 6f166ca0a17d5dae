/**
 * npm run fn -- deploy --config cdn.toml --site ID path/to/worker.ts [--pid-file FILE]…
 *              list     --config cdn.toml
 *              status   --config cdn.toml                          (with [control])
 *              rollback --config cdn.toml --site ID [--to vN] [--pid-file FILE]…
 *              dev      path/to/worker.ts [--edge URL] [--port 8788] [--client-ip ADDR] [--config cdn.toml]
 *              cf       [--client-ip ADDR] [--out FILE] [--config cdn.toml]
 *
 * deploy bundles the Worker (esbuild, as wrangler does), checks that it loads in workerd, stores it as the next
 * version of the `[[functions]]` entry `--site` names (`<config dir>/.parrot/functions/<id>/`) and makes it current;
 * rollback makes the version before the current one (or --to) current. Both then send SIGHUP to the edge box (its pid
 * file: --pid-file, default <store_dir>/.run/edge.pid), which restarts that function's process on the new code.
 * list shows each function's versions and the live one. With `[control]` in the config, versions go through the
 * control plane instead (src/control/fleet-functions.ts): deploy stores the version in the fleet's bucket for the
 * canaries first (--canary NAME…, or --canary-fraction F of the boxes that report, at least one), which watch it for
 * --window seconds (default 10: the edge's health, the function's processes, its exceptions over its requests above
 * --max-error-rate, default 0.01); healthy, it goes to every box, else every box stays on (or goes back to) the
 * version before, and the command exits 1. rollback goes to every box at once. Both wait (--timeout seconds, default
 * 15) until every box that reports runs the version; list shows where each version is live, status what each box
 * runs and why. dev runs a Worker under Miniflare in front of an edge (or
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
import { FleetKv, fleetBucket } from "../src/control/fleet-kv.ts";
import {
  describeFunctionState,
  fleetVersions,
  functionReports,
  previousOf,
  publishFunction,
  rollOutFunction,
  setFleetCurrent,
  settledVersion,
  whereLive,
} from "../src/control/fleet-functions.ts";
import { pickCanaries } from "../src/control/fleet.ts";
import { connectOnce } from "../src/control/nats.ts";
import { hostname, userInfo } from "node:os";

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
    timeout: { type: "string", default: "15" },
    canary: { type: "string", multiple: true },
    "canary-fraction": { type: "string" },
    window: { type: "string", default: "10" },
    "max-error-rate": { type: "string", default: "0.01" },
  },
});

function usage(message: string): never {
  console.error(`fn: ${message}`);
  console.error("usage: npm run fn -- deploy|list|status|rollback|dev|cf … (see scripts/fn.ts, docs/functions.md)");
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

  const control = file.config.control;
  /** With [control]: the fleet's bucket for `use`, then the connection closed. */
  const withBucket = async <T>(use: (kv: FleetKv) => Promise<T>): Promise<T> => {
    let nc;
    try {
      nc = await connectOnce(control!, "parrot-fn");
    } catch (err) {
      console.error(`fn: control plane unreachable (${(err as Error).message}): nothing changed`);
      process.exit(1);
    }
    try {
      return await use(await FleetKv.open(nc, control!));
    } finally {
      await nc.close().catch(() => undefined);
    }
  };
  const by = `${userInfo().username}@${hostname()}`;
  const ago = (at: number) => `${Math.max(0, Math.round((Date.now() - at) / 1000))} s ago`;
  /** Polls the boxes' reports until every box that reports this function runs `version` (at most --timeout). */
  const waitLive = async (kv: FleetKv, id: string, version: string) => {
    const deadline = Date.now() + Number(values.timeout) * 1000;
    for (;;) {
      const reports = await functionReports(kv);
      const { on, elsewhere } = whereLive(reports, id, version);
      if (!elsewhere.length || Date.now() > deadline) {
        console.log(`fn: ${id} ${version} live on ${on.join(", ") || "no box"} (${on.length} of ${on.length + elsewhere.length} boxes that report)`);
        for (const r of reports.filter((r) => id in r.functions && r.functions[id] !== version)) {
          console.log(`fn: not yet on ${r.box}: runs ${r.functions[id]}, reported ${ago(r.at)} (down? it installs ${version} when it starts)`);
        }
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  /** The Worker file named on the command line, bundled and checked to load in workerd (else the command stops). */
  const deployable = async (fn: Parameters<typeof validateFunction>[1]): Promise<{ entry: string; code: Uint8Array }> => {
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
    return { entry, code };
  };

  /** A number option within bounds (else the command stops). */
  const numberOf = (name: string, text: string, min: number, max: number) => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || n > max) usage(`--${name} must be a number from ${min} to ${max}`);
    return n;
  };

  if (control && (command === "deploy" || command === "rollback")) {
    const fn = fnFor();
    await withBucket(async (kv) => {
      let version: string;
      if (command === "deploy") {
        const windowMs = numberOf("window", values.window!, 0, 3_600) * 1000;
        const maxErrorRate = numberOf("max-error-rate", values["max-error-rate"]!, 0, 1);
        const fraction = values["canary-fraction"] === undefined ? undefined : numberOf("canary-fraction", values["canary-fraction"], 0, 1);
        // The boxes that report this function: the fleet's canary notion picks among them (src/control/fleet.ts).
        const boxes = (await functionReports(kv)).filter((r) => fn.id in r.functions).map((r) => r.box);
        let canaries: string[];
        try {
          canaries = pickCanaries(boxes, boxes, { names: values.canary, fraction });
        } catch (err) {
          usage((err as Error).message);
        }
        const { entry, code } = await deployable(fn);
        let published: Awaited<ReturnType<typeof publishFunction>>;
        try {
          published = await publishFunction(kv, fn.id, code, entry, by, { canaries, window_ms: windowMs, max_error_rate: maxErrorRate });
        } catch (err) {
          usage((err as Error).message);
        }
        version = published.version.version;
        console.log(`fn: ${fn.id} ${version} (${code.byteLength} bytes from ${entry}) is current in the control plane (bucket ${fleetBucket(control.namespace)})`);
        console.log(`fn: canary: ${canaries.join(", ")} (window ${windowMs / 1000} s, max_error_rate ${maxErrorRate}); the others keep ${published.record.previous === "v0" ? "their module" : published.record.previous} until then`);
        if ((await rollOutFunction(kv, published.record, published.revision, Number(values.timeout) * 1000, (line) => console.log(line))) !== 0) {
          const back = settledVersion({ ...published.record, stage: "rolled-back" });
          if (back !== "v0") await waitLive(kv, fn.id, back);
          process.exitCode = 1;
          return;
        }
      } else {
        const { versions, current, record } = await fleetVersions(kv, fn.id);
        const to = values.to ?? previousOf(versions, current, record);
        if (!to) usage(`${fn.id} has no version before the current one (${current ?? "none"}) in the control plane to roll back to`);
        try {
          await setFleetCurrent(kv, fn.id, to, by);
        } catch (err) {
          usage((err as Error).message);
        }
        version = to;
        console.log(`fn: ${fn.id} ${to} is current in the control plane`);
      }
      await waitLive(kv, fn.id, version);
    });
  } else if (command === "status") {
    if (!control) usage(`status needs [control] in ${file.path} (one box: fn -- list)`);
    await withBucket(async (kv) => {
      const reports = await functionReports(kv);
      for (const fn of file.config.functions) {
        const { record } = await fleetVersions(kv, fn.id);
        if (!record) console.log(`${fn.id}: nothing deployed (each box runs ${fn.module})`);
        else {
          const stage = record.stage ?? "all";
          const canaries = record.canaries?.length ? `, canaries ${record.canaries.join(", ")}` : "";
          console.log(`${fn.id}: ${record.version} ${stage}${canaries}${record.reason ? `: ${record.reason}` : ""} (${record.by}, ${ago(record.at)}); before it: ${record.previous ?? "-"}`);
        }
        for (const r of reports) if (fn.id in r.functions) console.log(`  ${describeFunctionState(r, fn.id)}`);
      }
      if (!file.config.functions.length) console.log(`${file.path} has no [[functions]]`);
    });
  } else if (control && command === "list") {
    await withBucket(async (kv) => {
      const reports = await functionReports(kv);
      for (const fn of file.config.functions) {
        const { versions, current } = await fleetVersions(kv, fn.id);
        console.log(`${fn.id}  hosts ${fn.hosts.join(", ")}${fn.path !== "/" ? ` path ${fn.path}` : ""}  on_error ${fn.on_error}  current: ${current ?? `none deployed (each box runs ${fn.module})`}`);
        for (const v of versions) {
          const { on } = whereLive(reports, fn.id, v.version);
          console.log(`  ${v.version === current ? "*" : " "} ${v.version}  ${v.at}  ${v.bytes} bytes  ${v.from}  live on: ${on.join(", ") || "-"}`);
        }
        for (const r of reports) if (fn.id in r.functions && !versions.some((v) => v.version === r.functions[fn.id])) console.log(`    ${r.box} runs ${r.functions[fn.id]} (reported ${ago(r.at)})`);
      }
      if (!file.config.functions.length) console.log(`${file.path} has no [[functions]]`);
    });
  } else if (command === "deploy") {
    const fn = fnFor();
    const { entry, code } = await deployable(fn);
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
