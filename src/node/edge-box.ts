/**
 * An edge box, as `npm run edge` runs it: the edge on bare workerd (disk store, --processes) or Miniflare, with its
 * front door ([[sites]]), its control agent ([control]) and its anycast announcer ([anycast] service = "edge"); a
 * planned stop withdraws the anycast route first, then stops serving; SIGHUP reloads the config file. With
 * `[control] fleet = true` the config is the fleet's current version merged with the box's own file, and the box
 * follows the fleet's rollout (src/control/fleet-box.ts) through the same live reload.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { startAnycast } from "../anycast/host.ts";
import { originsOf } from "../config/edge-schema.ts";
import { prepareControl, runControlAgent } from "../control/host.ts";
import { fleetBootConfig, loopback, mergedText, startFleetMember, type FleetBoxOptions, type FleetVersion } from "../control/fleet-box.ts";
import { wantsFleet } from "../control/fleet-config.ts";
import { fleetBucket } from "../control/fleet-kv.ts";
import { startFleetCertificates } from "../control/fleet-certs.ts";
import { catchUpFunctions, followFunctions, type FunctionFigures, type FunctionsBox } from "../control/fleet-functions.ts";
import { clearCurrent, currentVersionFile, installVersion } from "./function-versions.ts";
import { HEALTH_PATH } from "../contracts/well-known.ts";
import { ControlSchema } from "../config/control-schema.ts";
import { ConfigError, type CdnConfig } from "../config/config.ts";
import { configDigest } from "../contracts/config-digest.ts";
import { parse as parseToml } from "smol-toml";
import { behindFrontDoor, hasFrontDoor, startFrontDoor, workerdBehindFrontDoor, type RunningFrontDoor } from "../frontdoor/frontdoor.ts";
import { configFromText, configPath, exitOnConfigError, loadConfigFile, readConfigFile, withAbsolutePaths, withOverrides, type ConfigFile } from "./config-file.ts";
import { stopWithNpm } from "./npm-parent.ts";
import { restartOnlyChanges } from "./reload.ts";
import { startEdgeMiniflare, type RunningEdge } from "./edge-host.ts";
import { startEdgeWorkerd } from "./workerd-host.ts";
import { bootGeoip, followGeoip, type GeoipRunning } from "../control/geoip-follower.ts";
import { edgeGeoipOptions, edgeTakesGeoip, forgetEdgeGeoip, installEdgeGeoip } from "./edge-geoip.ts";

/** What `npm run edge` was given (scripts/edge.ts parses it). */
export interface EdgeBoxOptions {
  config?: string;
  origin?: string;
  port?: string;
  "https-port"?: string;
  host: string;
  persist?: string;
  store?: string;
  name?: string;
  runtime: "workerd" | "miniflare";
  processes?: number;
  /** Where the box writes its pid (the process SIGHUP reloads); default `<store>/.run/edge.pid`. */
  "pid-file"?: string;
}

/** Runs the box until SIGINT/SIGTERM; `usage` reports an error of the operator's (and exits). */
export async function runEdgeBox(values: EdgeBoxOptions, usage: (message: string) => never): Promise<void> {
  const processes = values.processes;
  let file;
  // [control] fleet = true in the box's own file: the fleet's current version, merged with it, before anything starts.
  const fleet = values.config ? await fleetBoot(values, usage) : undefined;
  try {
    const base = fleet
      ? fleet.file
      : values.config
        ? loadConfigFile(values.config)
        : configFromText(`[edge]\norigin = ${JSON.stringify(values.origin)}\n`, process.cwd(), "--origin");
    file = withOverrides(base, { origin: values.origin, name: values.name });
  } catch (err) {
    exitOnConfigError(err);
  }
  const config = file.config;
  const origin = originsOf(config.edge!).map((o) => o.url).join(", ");
  const frontDoor = hasFrontDoor(config);
  if (frontDoor && values.runtime !== "workerd") usage("[[sites]] (the front door) needs --runtime workerd");
  if (config.functions.length && values.runtime !== "workerd") {
    console.error(`edge: [[functions]] run on --runtime workerd only (each in a workerd process of its own); here their sites are served as their on_error says`);
  }
  const storeDir = values.store ?? values.persist ?? (values.runtime === "workerd" ? configPath(file, config.edge!.store_dir) : undefined);
  // [control]: a box start id and the control agent's socket, bound into the edge before it starts.
  let control: ReturnType<typeof prepareControl> | undefined;
  try {
    if (config.control) control = prepareControl(config, storeDir ? join(storeDir, ".run") : join(tmpdir(), `parrot-${process.pid}`));
  } catch (err) {
    usage(`${file.path}: ${(err as Error).message}`);
  }
  // [control] with [[functions]]: the control plane's current versions installed before the functions start.
  const functionsBox: FunctionsBox | undefined =
    config.control && config.functions.length && values.runtime === "workerd"
      ? {
          box: config.edge!.name,
          cfg: config.control,
          ids: config.functions.map((f) => f.id),
          running: (id) => currentVersionFile(file, id)?.version ?? config.functions.find((f) => f.id === id)!.module,
          install: (id, info, code) => installVersion(file, id, info, code),
          uninstall: (id) => clearCurrent(file, id),
          // Set once the functions run (below): a canary's window reads them.
          health: (id) => functionHealth?.(id),
          edgeProblem: async () => {
            try {
              const res = await fetch(new URL(HEALTH_PATH, loopback(edge.url)), { signal: AbortSignal.timeout(2_000) });
              const text = await res.text();
              return res.status === 200 || text.startsWith("draining") ? undefined : `the edge's health answers ${res.status} ${text.trim().slice(0, 120)}`;
            } catch (err) {
              return `the edge's health does not answer: ${(err as Error).message}`;
            }
          },
          log: (line) => console.log(`functions: ${line}`),
        }
      : undefined;
  if (functionsBox) console.log(`functions: ${await catchUpFunctions(functionsBox, config.control!.catch_up_timeout_ms)}`);
  // [geoip] fleet = true: the fleet's current City database in place before the edge answers (src/node/edge-geoip.ts).
  let geoipFleet: ReturnType<typeof edgeGeoipOptions>;
  let geoipBoot: GeoipRunning | undefined;
  try {
    geoipFleet = edgeGeoipOptions(config, values.runtime === "workerd" ? storeDir : undefined, (line) => console.log(`geoip: ${line}`));
  } catch (err) {
    usage(`${file.path}: ${(err as Error).message}`);
  }
  if (!geoipFleet && storeDir && values.runtime === "workerd") forgetEdgeGeoip(storeDir);
  if (geoipFleet) {
    geoipBoot = await bootGeoip(geoipFleet, config.control!.catch_up_timeout_ms);
    if (geoipBoot.path) installEdgeGeoip(storeDir!, geoipBoot.path, geoipBoot.version!);
    console.log(`geoip: ${geoipBoot.source}`);
  }
  /** The config text the functions were last built from (SIGHUP and the fleet's versions change it). */
  let functionsText = file.text;
  let edge: RunningEdge;
  let door: RunningFrontDoor | undefined;
  /** Hands a config text to the running edge workers; the text they read (the front door's changes made). */
  let reloadEdge: ((text: string) => string) | undefined;
  let reloadFunctions: ((text: string) => Promise<string[]>) | undefined;
  let functionHealth: ((id: string) => FunctionFigures | undefined) | undefined;
  try {
    if (values.runtime === "miniflare") {
      edge = await startEdgeMiniflare({ configText: file.text, host: values.host, port: Number(values.port ?? 8787), persistDir: values.persist, control });
    } else {
      const w = await startEdgeWorkerd({
        configText: file.text,
        configDir: file.dir,
        host: values.host,
        port: Number(values.port ?? 8787),
        storeDir,
        processes,
        control,
        // Behind the front door workerd listens on loopback only, and believes the front door's X-Forwarded-*.
        ...(frontDoor ? workerdBehindFrontDoor(file.text, config.frontdoor.upstream_host) : {}),
      });
      console.log(`store: ${w.storeDir} (${w.recovered.entries} entries, ${w.recovered.removed} files removed at start)`);
      console.log(`workerd pids: ${w.edgePids().join(" ")}${w.edgePids().includes(w.storePid()) ? "" : ` (store ${w.storePid()})`}`);
      edge = w;
      reloadEdge = (text) => {
        const written = frontDoor ? behindFrontDoor(text, config.frontdoor.upstream_host) : text;
        w.reload(written);
        return written;
      };
      reloadFunctions = (text) => w.reloadFunctions(text);
      functionHealth = (id) => w.functions?.health(id);
      for (const f of w.functions?.running ?? []) console.log(`function ${f.id}: workerd pid ${f.pid()}`);
      if (frontDoor) {
        door = await startFrontDoor({
          config,
          host: values.host!,
          httpPort: values.port === undefined ? undefined : Number(values.port),
          httpsPort: values["https-port"] === undefined ? undefined : Number(values["https-port"]),
          upstream: new URL(w.url).host,
          runDir: join(w.storeDir, ".run", "frontdoor"),
        }).catch(async (err) => {
          await w.stop();
          usage((err as Error).message);
        });
        door.terminator.loop.once("exit", (code, signal) => {
          if (stopping) return;
          console.error(`front door supervisor exited (${code ?? signal})`);
          void w.stop().finally(() => process.exit(1));
        });
        console.log(`front door: ${door.httpsUrl} (HTTPS, h2) and ${door.httpUrl}, ${door.plan.sites.length} sites -> workerd ${w.url}`);
        if (door.http3) console.log(`front door: HTTP/3 on udp ${new URL(door.httpsUrl).hostname}:${door.http3.port} (Caddy), Alt-Svc h3=":${door.http3.advertisedPort}"`);
      }
    }
  } catch (err) {
    usage((err as Error).message);
  }
  /** Restart-only fields a new config changes; [[sites]] apply live while the front door runs. */
  const laterChanges = (next: CdnConfig) => restartOnlyChanges(file.config, next).filter((f) => !(f === "sites" && door));
  const agent = control ? await runControlAgent(config, control, edge.url, (line) => console.log(line)) : undefined;
  const member =
    fleet && reloadEdge
      ? await startFleetMember(
          fleet.options,
          {
            edgeUrl: edge.url,
            apply: async (text) => {
              const next = withOverrides(configFromText(text, file.dir, `${values.config} with the fleet's version`), { origin: values.origin, name: values.name });
              door?.check(next.config); // a site the front door cannot serve refuses the version before anything changes
              // The version's functions too (changed ones restarted in the background, as on SIGHUP).
              functionsText = next.text;
              void reloadFunctions?.(next.text).then(
                (notes) => notes.forEach((n) => console.log(`fleet: ${n}`)),
                (err: Error) => console.error(`fleet: functions not reloaded, the running ones stay: ${err.message}`),
              );
              // The front door first: a site it cannot serve (HAProxy refuses, a file is unusable) refuses the version whole.
              await door?.reconfigure(next.config);
              const digest = configDigest(reloadEdge!(next.text));
              return { digest, origins: originsOf(next.config.edge!).map((o) => o.url), later: laterChanges(next.config) };
            },
          },
          fleet.started,
        )
      : undefined;
  // [acme] issuer: certificates through the fleet's bucket, each box's key sealed to its own curve key.
  const fleetCerts =
    door && config.acme?.issuer && config.control && storeDir
      ? startFleetCertificates({
          box: config.edge!.name,
          cfg: config.control,
          xkeyPath: join(storeDir, ".run", "fleet-cert.xk"),
          issues: door.plan.acme?.issue ?? false,
          certificates: door.certificates,
        })
      : undefined;
  const functionsFollower =
    functionsBox && reloadFunctions
      ? await followFunctions(functionsBox, async () => {
          for (const note of await reloadFunctions!(functionsText)) console.log(`functions: ${note}`);
        })
      : undefined;
  const geoipFollower =
    geoipFleet &&
    followGeoip(geoipFleet, geoipBoot!, async (path, v) => {
      installEdgeGeoip(storeDir!, path, v);
      await edgeTakesGeoip(edge.url, v);
    });
  if (fleet) console.log(`fleet: ${fleet.source}; following the rollout record of bucket ${fleetBucket(config.control!.namespace)}`);
  if (!control) console.log("control: direct fan-out to [[edges]] urls (no [control])");
  // [anycast] service = "edge": announce this box's prefixes while its health endpoint is good.
  const anycast = await startAnycast("edge", { config, source: file.path, check: { kind: "http", url: edge.url } }).catch(async (err: Error) => {
    console.error(`anycast: ${err.message}`);
    await door?.stop();
    await edge.stop();
    process.exit(2);
  });
  // The process a reload signal goes to is this one (not npm's: npm dies of SIGHUP), named in a pid file.
  const pidFile = values["pid-file"] ?? (storeDir ? join(storeDir, ".run", "edge.pid") : undefined);
  if (pidFile) {
    try {
      mkdirSync(dirname(pidFile), { recursive: true });
      writeFileSync(pidFile, `${process.pid}\n`);
    } catch (err) {
      console.error(`edge: cannot write the pid file: ${(err as Error).message}`);
    }
  }
  if (values.config && reloadEdge) console.log(`edge pid ${process.pid}${pidFile ? ` (in ${pidFile})` : ""}: kill -HUP ${process.pid} reloads ${values.config}`);
  console.log(`edge ready: ${door?.httpUrl ?? edge.url} -> origin ${origin} (${values.runtime})`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await anycast?.withdraw(); // routers first, then the listeners: in-flight connections finish
    await member?.stop();
    await fleetCerts?.stop();
    await functionsFollower?.stop();
    await geoipFollower?.stop();
    await agent?.stop();
    await door?.stop();
    await edge.stop();
    await anycast?.stop();
    if (pidFile) rmSync(pidFile, { force: true });
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  stopWithNpm((npm) => {
    console.error(`edge: npm (pid ${npm}), which ran this box, has exited; stopping (a reload is kill -HUP ${process.pid}, this process)`);
    void stop();
  });

  /**
   * SIGHUP: reads the config file again and, when it is valid, hands it to the running edge workers (rules, origins,
   * limits of the cache, the admin token, the [[edges]] list…) without a restart or a dropped connection. A bad file
   * changes nothing (the reason is logged); fields that only a restart applies are named.
   */
  process.on("SIGHUP", () => {
    if (!values.config || !reloadEdge) {
      console.error(`edge: reload needs --config and the workerd runtime; nothing changed`);
      return;
    }
    if (member) {
      // The fleet's version stays; the box's own fields are taken from its file again.
      try {
        member.setLocal(readFileSync(values.config, "utf8"));
      } catch (err) {
        console.error(`edge: reload refused, the running configuration stays: ${(err as Error).message}`);
      }
      return;
    }
    let next;
    try {
      next = withOverrides(readConfigFile(values.config), { origin: values.origin, name: values.name });
    } catch (err) {
      console.error(`edge: reload refused, the running configuration stays: ${(err as Error).message.replace(/\n\s*/g, " ")}`);
      return;
    }
    try {
      door?.check(next.config);
    } catch (err) {
      console.error(`edge: reload refused, the running configuration stays: ${(err as Error).message.replace(/\n\s*/g, " ")}`);
      return;
    }
    const later = laterChanges(next.config);
    functionsText = next.text;
    // Functions first (their files rebuilt, changed ones restarted), then the edge follows the new config.
    void (reloadFunctions?.(next.text) ?? Promise.resolve([]))
      .then(
        (notes) => notes.forEach((n) => console.log(`edge reload: ${n}`)),
        (err: Error) => console.error(`edge reload: functions not reloaded, the running ones stay: ${err.message}`),
      )
      .finally(() => {
        reloadEdge!(next.text);
        void (door?.reconfigure(next.config) ?? Promise.resolve(false)).then(
          (changed) => {
            if (changed) console.log(`edge reload: the front door's sites reconfigured (${door!.plan.sites.map((s) => s.id).join(", ")})`);
            console.log(`edge reload: ${next.path} applied${later.length ? `; ${later.join(", ")} changed and apply at the next restart` : ""}`);
          },
          (err: Error) => console.error(`edge reload: the front door's sites not reconfigured, the running ones stay: ${err.message}`),
        );
      });
  });
}

/**
 * A box whose own file says `[control] fleet = true`: asks the fleet's bucket for this box's version (within
 * `catch_up_timeout_ms`; else the version it last applied, else its own file) and merges it with the own file.
 * Undefined for a box outside the fleet. A version this box cannot run falls back to its own file (the member
 * reports it refused).
 */
async function fleetBoot(values: EdgeBoxOptions, usage: (message: string) => never): Promise<{ file: ConfigFile; options: FleetBoxOptions; started: FleetVersion; source: string } | undefined> {
  const path = values.config!;
  let localText: string;
  try {
    localText = readFileSync(path, "utf8");
    if (!wantsFleet(localText)) return undefined;
  } catch (err) {
    exitOnConfigError(err instanceof Error ? new Error(`${path}: ${err.message}`) : err);
  }
  if (values.runtime !== "workerd") usage("[control] fleet = true needs --runtime workerd (its live reload applies the fleet's versions)");
  const dir = dirname(resolve(path));
  const raw = parseToml(localText) as { control?: unknown; edge?: { name?: string; store_dir?: string } };
  const parsed = ControlSchema.safeParse(raw.control);
  if (!parsed.success) exitOnConfigError(new ConfigError(path, parsed.error.issues.map((i) => `control.${i.path.join(".")}: ${i.message}`)));
  const cfg = withAbsolutePaths({ control: parsed.data } as CdnConfig, dir).control!;
  const box = values.name ?? raw.edge?.name ?? "edge";
  const storeDir = values.store ?? resolve(dir, raw.edge?.store_dir ?? ".parrot/store");
  const options: FleetBoxOptions = { box, cfg, localText, statePath: join(storeDir, ".run", "fleet-version.json") };
  const boot = await fleetBootConfig(options, cfg.catch_up_timeout_ms);
  try {
    return { file: configFromText(mergedText(boot, localText), dir, `${path} with ${boot.source}`), options, started: boot, source: boot.source };
  } catch (err) {
    console.error(`fleet: version ${boot.version} cannot run here, starting with the own file: ${(err as Error).message.replace(/\n\s*/g, " ")}`);
    return { file: loadConfigFile(path), options, started: { version: 0, shared: undefined }, source: `own file (version ${boot.version} refused)` };
  }
}
