/**
 * Node host of the mirror redirector (`npm run redirector`): loads cdn.toml and the GeoIP data ([geoip], as the DNS
 * node does), reads the origin's lists and scans every mirror once before it says ready, then again every
 * `scan_interval_ms` (one round at a time). The client's address is the connection's (`peer.address`), never a
 * header unless the peer is a trusted proxy. SIGHUP (or `reload()`) builds a new redirector from the file (with the
 * running one's catalog and the checks of unchanged mirrors), scans once, then swaps it in; a bad file keeps the
 * running one. `POST /.well-known/cdn/scan` with the admin token runs a
 * round now and answers when it is done (operators after fixing a mirror; the tests, which never wait on a timer).
 * With `[control]`, scans are shared with the other redirector boxes (redirector-fleet.ts); with `state_file`, the
 * mirrors' states outlive a restart (redirector-state-file.ts).
 */
import { hostname } from "node:os";
import { isAuthorized, unauthorized } from "../net/admin-auth.ts";
import { Redirector } from "../redirector/redirector.ts";
import { configPath, loadConfigFile, readConfigFile } from "./config-file.ts";
import { loadGeoIp, type LoadedGeoIp } from "./dns-geoip.ts";
import { RedirectorFleet } from "./redirector-fleet.ts";
import { loadStateFile, saveStateFile } from "./redirector-state-file.ts";
import { serveFetch, type Served } from "./serve-fetch.ts";
import { StatsFiles } from "./redirector-stats.ts";
import { listRsyncModule, rsyncInstalled } from "./rsync-lister.ts";
import { MIRROR_STATS_PATH } from "../contracts/well-known.ts";

export const SCAN_PATH = "/.well-known/cdn/scan";

export interface RedirectorHost {
  url: string;
  served: Served;
  current(): Redirector;
  /** One round (origin lists, then every mirror) now; resolves when done. */
  scan(): Promise<void>;
  reload(): Promise<void>;
  close(): Promise<void>;
}

/** rsync for `[[mirrors]] rsync`, when installed (said once when it is not: those mirrors are scanned over HTTP). */
let rsyncChecked: boolean | undefined;
function rsyncLister(log: (line: string) => void) {
  if (rsyncChecked === undefined) {
    rsyncChecked = rsyncInstalled();
    if (!rsyncChecked) log(JSON.stringify({ redirector: "rsync", error: "rsync is not installed (Debian: apt install rsync): mirrors with `rsync` are scanned over HTTP" }));
  }
  return rsyncChecked ? listRsyncModule : undefined;
}

export async function runRedirector(opts: { configPath: string; port?: number; host?: string; name?: string; log?: (line: string) => void }): Promise<RedirectorHost> {
  const log = opts.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  let geo: LoadedGeoIp | undefined;
  let stats: StatsFiles | undefined;
  // With [control] (read at start; a reload does not change how the box reaches NATS): scans shared with other boxes.
  let fleet: RedirectorFleet | undefined;
  let redirector: Redirector | undefined;
  /** What a round found goes to the other boxes ([control]) and to the state file. */
  const afterRound = async (r: Redirector) => {
    await fleet?.publish(r);
    if (r.cfg.state_file) await saveStateFile(r.cfg.state_file, r, r.cfg.name!).catch((err: Error) => log(JSON.stringify({ redirector: "state_file", error: err.message })));
  };
  const build = async (path: string, previous?: Redirector) => {
    const file = readConfigFile(path);
    if (!file.config.redirector) throw new Error(`${path}: no [redirector] table`);
    const box = opts.name ?? file.config.redirector.name ?? hostname();
    file.config.redirector.name = box; // in the scans' User-Agent
    geo = await loadGeoIp(file.config.geoip, file.dir, { previous: geo, log });
    const cfg = file.config.redirector;
    // The statistics folder is read at start (a reload keeps the running one).
    stats ??= new StatsFiles(cfg.stats_dir === undefined ? undefined : configPath(file, cfg.stats_dir), cfg.stats_days, log);
    const listRsync = file.config.mirrors.some((m) => m.rsync) ? rsyncLister(log) : undefined;
    const r = new Redirector({ config: file.config, geoip: geo.geoip, log, previous, onDay: (finished) => stats!.write(finished), listRsync });
    await r.refreshOrigin();
    const control = file.config.control;
    if (control && !fleet) {
      const heartbeatMs = r.cfg.fleet_heartbeat_ms;
      fleet = await RedirectorFleet.start({ control, box, heartbeatMs, current: () => redirector ?? r, log, onGained: () => void (redirector && scan()) }, control.catch_up_timeout_ms);
    }
    if (!previous && r.cfg.state_file) await loadStateFile(r.cfg.state_file, r, log);
    await fleet?.adopt(r); // the mirrors' last states (other boxes', or this box's before a restart)
    await r.scanRound(fleet && ((m) => fleet!.owns(m)));
    await afterRound(r);
    return r;
  };
  try {
    redirector = await build(opts.configPath);
  } catch (err) {
    loadConfigFile(opts.configPath); // a config error: printed by field, exit 2
    throw err;
  }
  // One round at a time: a timer's round and a requested one share the promise.
  let running: Promise<void> | undefined;
  const scan = () =>
    (running ??= (async () => {
      const r = redirector!;
      const version = r.catalog.version;
      await r.refreshOrigin();
      if (fleet && r.catalog.version !== version) await fleet.adopt(r); // states kept for a catalog it now has
      await r.scanRound(fleet && ((m) => fleet!.owns(m)));
      await afterRound(r);
    })().finally(() => (running = undefined)));

  const cfg = redirector.cfg;
  const stopStats = stats!.follow(() => redirector!);
  const served = await serveFetch(
    async (request, peer) => {
      const path = new URL(request.url).pathname;
      if (path === MIRROR_STATS_PATH && (request.method === "GET" || request.method === "HEAD")) return stats!.answer(request, redirector!);
      if (path === SCAN_PATH) {
        const token = redirector!.config.admin.token;
        if (request.method !== "POST") return new Response("405 POST only\n", { status: 405, headers: { allow: "POST" } });
        if (!(await isAuthorized(request, token))) return unauthorized(!!token);
        await scan();
        return Response.json({ ...redirector!.status(), ...(fleet ? { fleet: fleet.describe() } : {}) });
      }
      return redirector!.handle(request, peer.address);
    },
    { host: opts.host ?? cfg.listen, port: opts.port ?? cfg.port, log },
  );

  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const schedule = () => {
    if (closed) return;
    timer = setTimeout(() => void scan().finally(schedule), redirector!.cfg.scan_interval_ms);
    timer.unref();
  };
  schedule();

  const reload = async () => {
    try {
      redirector = await build(opts.configPath, redirector);
      log(JSON.stringify({ redirector: "reloaded", mirrors: redirector.mirrors.length, files: redirector.catalog.size }));
      await fleet?.adopt(redirector);
    } catch (err) {
      log(JSON.stringify({ redirector: "reload refused, the running config stays", error: (err as Error).message }));
    }
  };
  return {
    url: served.url,
    served,
    current: () => redirector!,
    scan,
    reload,
    close: async () => {
      closed = true;
      clearTimeout(timer);
      await fleet?.close();
      await served.close();
      stopStats();
    },
  };
}
