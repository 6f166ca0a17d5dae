/**
 * The world on one machine: regions in Linux network namespaces, joined by long links with real round-trip times.
 *
 *   region R (n = 1, 2, 3)                                    the links (TUN pairs, src/world/link-host.ts)
 *   pw-R-cli 10.n.0.100 ─┐                                    eu ── 175.7 ms ── us
 *   pw-R-dns 10.n.0.53  ─┼─ br0 ── pw-R-rt (BIRD, AS 6500n) ══ eu ── 348.8 ms ── ap
 *   pw-R-edge 10.n.0.10 ─┘   10.n.0.1                          us ── 188.4 ms ── ap
 *     + anycast 10.200.0.1 (BGP from the box's own BIRD)      origin: pw-us-org 10.2.0.80 on us's LAN
 *
 * Every address is private (10.0.0.0/8) and exists only inside the namespaces: the root namespace gets none (the
 * TUN devices are opened there but moved into the routers at once). Each region's LAN is a bridge in its router
 * without added delay; every packet between regions crosses the emulator, which delays it by half the link's RTT
 * and drops it with the link's loss. Unicast routes between regions are static; the anycast prefix is BGP: each
 * edge box announces it to its router (src/anycast/), the routers pass it on to each other over the long links
 * (eBGP, AS paths), so a region without a healthy edge of its own reaches the next one.
 *
 * RTTs (one figure per pair): WonderProxy's city-to-city ping table, "Miles per Millisecond" (Paul Reinheimer,
 * wonderproxy.com/blog/miles-per-milisecond, 2011): Paris–Fremont 176.22 / 175.19 ms (both directions, mean
 * 175.7), Fremont–Sydney 184.91 / 191.96 ms (mean 188.4), Paris–Sydney 348.84 ms.
 *
 * Everything the world starts is a child of this process (setpriv --pdeathsig KILL) or lives in its namespaces;
 * `destroy()` ends it all, bounded, and a world left by a crashed run is removed at the next start (its namespaces
 * are named pw-*, its owner's pid is in /run/parrot-world.pid).
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { natsServerConfig } from "../../src/control/nats-server.ts";
import { openGeoBytes } from "../../src/geoip/open.ts";
import { parseIp } from "../../src/net/ip.ts";

const exec = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, "../..");
const PID_FILE = "/run/parrot-world.pid";
const PREFIX = "pw-";

export interface Region {
  id: "eu" | "us" | "ap";
  n: number;
  city: string;
  country: string;
  continent: string;
  lat: number;
  lon: number;
}

export const REGIONS: Region[] = [
  { id: "eu", n: 1, city: "Paris", country: "FR", continent: "EU", lat: 48.86, lon: 2.35 },
  { id: "us", n: 2, city: "Fremont", country: "US", continent: "NA", lat: 37.55, lon: -121.99 },
  { id: "ap", n: 3, city: "Sydney", country: "AU", continent: "OC", lat: -33.87, lon: 151.21 },
];

/** Inter-region round-trip times (see the header for the source). */
export const LINKS: { a: Region["id"]; b: Region["id"]; rttMs: number }[] = [
  { a: "eu", b: "us", rttMs: 175.7 },
  { a: "us", b: "ap", rttMs: 188.4 },
  { a: "eu", b: "ap", rttMs: 348.8 },
];

export const ANYCAST = "10.200.0.1";
export const ANYCAST_PREFIX = "10.200.0.0/24";
export const HTTP_PORT = 8080;
export const TOKEN = "parrot-world-admin-token-0123456789";
export const EDGE_AS = 64512;
export const ORIGIN = "10.2.0.80";
export const NATS_TOKEN = "parrot-world-nats-token-0123456789";
const NATS = { client: 4222, route: 6222, http: 8222 };

export const addr = {
  router: (r: Region) => `10.${r.n}.0.1`,
  edge: (r: Region) => `10.${r.n}.0.10`,
  dns: (r: Region) => `10.${r.n}.0.53`,
  client: (r: Region) => `10.${r.n}.0.100`,
};
export const ns = {
  router: (r: Region) => `${PREFIX}${r.id}-rt`,
  edge: (r: Region) => `${PREFIX}${r.id}-edge`,
  dns: (r: Region) => `${PREFIX}${r.id}-dns`,
  client: (r: Region) => `${PREFIX}${r.id}-cli`,
  origin: `${PREFIX}us-org`,
};
const region = (id: string) => REGIONS.find((r) => r.id === id)!;
const linkName = (l: { a: string; b: string }) => `${l.a}-${l.b}`;
/** 10.255.<na nb>.1 on a's side, .2 on b's. */
const linkAddr = (l: { a: string; b: string }, side: "a" | "b") => `10.255.${region(l.a).n}${region(l.b).n}.${side === "a" ? 1 : 2}`;
/** The TUN device of link l in side's router (≤ 15 characters). */
const linkDev = (l: { a: string; b: string }, side: "a" | "b") => `${PREFIX}${side === "a" ? l.a : l.b}-${side === "a" ? l.b : l.a}`;

/**
 * The world's GeoIP database (GeoIP2-City schema): each region's 10.n.0.0/16 at its city. Written by MaxMind's own
 * writer (test/world/geoip.pl, Debian libmaxmind-db-writer-perl) with `node test/world/make-geoip.ts`, and kept as
 * a fixture so the world needs no writer to run; checked against REGIONS at every build.
 */
export const GEOIP_FIXTURE = join(ROOT, "test/fixtures/world-geoip.mmdb");

/** Writes the world's GeoIP database to `out` with geoip.pl. */
export async function writeWorldGeoip(out: string): Promise<void> {
  const tsv = REGIONS.map((r) => `10.${r.n}.0.0/16\t${r.city}\t${r.country}\t${r.continent}\t${r.lat}\t${r.lon}`).join("\n");
  await new Promise<void>((ok, fail) => {
    const p = execFile("perl", [join(ROOT, "test/world/geoip.pl"), out], (err, _o, e) => (err ? fail(new Error(`geoip.pl: ${e || err.message}`)) : ok()));
    p.stdin!.end(`${tsv}\n`);
  });
  checkWorldGeoip(out);
}

/** Throws unless the database places every region's client at its city (the fixture matches REGIONS). */
export function checkWorldGeoip(path: string): void {
  const db = openGeoBytes(readFileSync(path));
  for (const r of REGIONS) {
    const ipText = `10.${r.n}.0.100`;
    const hit = db.lookup(ipText, parseIp(ipText)!);
    if (hit?.info.city !== r.city || hit.info.lat !== r.lat || hit.info.lon !== r.lon)
      throw new Error(`${path} does not place ${ipText} in ${r.city} (${JSON.stringify(hit?.info)}): run node test/world/make-geoip.ts`);
  }
}

/** Timings the world's boxes use; the DNS nodes probe across the long links. */
export const TIMING = {
  dnsTtl: 5,
  // A probe is a new TCP connection: a lost SYN is sent again after 1 s (TCP's initial RTO), so a timeout under
  // 1 s + two RTTs fails on one lost packet, and 10 % loss took live edges out of answers (900 ms, down after 2).
  health: { interval_ms: 2000, timeout_ms: 1900, down_after: 3, up_after: 2 },
  anycast: { interval_ms: 500, timeout_ms: 400, down_after: 2, up_after: 2, withdraw_grace_ms: 500, hold_time: 9 },
};

/** Why the world cannot be built here (undefined: it can). Checks the capabilities, not the user id. */
export async function worldUnavailable(): Promise<string | undefined> {
  const need: [string, string][] = [
    ["/usr/sbin/bird", "bird2"],
    ["/usr/sbin/birdc", "bird2"],
    ["/dev/net/tun", "the TUN device (/dev/net/tun)"],
    ["/usr/bin/python3", "python3"],
    ["/usr/bin/setpriv", "util-linux (setpriv)"],
    ["/usr/bin/dig", "bind9-dnsutils (dig)"],
    ["/usr/bin/curl", "curl"],
    ["/usr/sbin/nats-server", "nats-server"],
  ];
  for (const [path, what] of need) if (!existsSync(path)) return `${what} is not installed`;
  const probe = `${PREFIX}probe-${process.pid}`;
  try {
    await exec("ip", ["netns", "add", probe]);
  } catch (err) {
    return `network namespaces are not available here (ip netns add: ${((err as { stderr?: string }).stderr ?? (err as Error).message).trim()})`;
  }
  try {
    // A veth pair and a TUN device are what the world is made of.
    await exec("ip", ["-n", probe, "link", "add", "pwp0", "type", "veth", "peer", "name", "pwp1"]);
    await exec("ip", ["-n", probe, "tuntap", "add", "dev", "pwp2", "mode", "tun"]);
  } catch (err) {
    return `veth or TUN devices cannot be made here: ${((err as { stderr?: string }).stderr ?? (err as Error).message).trim()}`;
  } finally {
    await exec("ip", ["netns", "del", probe]).catch(() => undefined);
  }
  return undefined;
}

export interface Proc {
  name: string;
  proc: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `argv` inside namespace `netns` (or here), ending with this process; resolves once `ready` is printed. */
export function startIn(netns: string | undefined, name: string, argv: string[], ready: RegExp | undefined, log: string, timeoutMs = 90_000, stdin: "ignore" | "pipe" = "ignore"): Promise<Proc> {
  const cmd = netns ? ["ip", "netns", "exec", netns, "setpriv", "--pdeathsig", "KILL", ...argv] : ["setpriv", "--pdeathsig", "KILL", ...argv];
  const proc = spawn(cmd[0]!, cmd.slice(1), { cwd: ROOT, stdio: [stdin, "pipe", "pipe"], env: { ...process.env, UV_THREADPOOL_SIZE: "16" } });
  const file = createWriteStream(log, { flags: "a" });
  let out = "";
  const keep = (c: Buffer) => {
    file.write(c);
    if (out.length < 1 << 20) out += c.toString();
  };
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  const p: Proc = {
    name,
    proc,
    output: () => out,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill(signal);
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
  };
  if (!ready) return Promise.resolve(p);
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      void p.stop("SIGKILL");
      fail(new Error(`${name} not ready within ${timeoutMs} ms:\n${out.slice(-3000)}`));
    }, timeoutMs);
    const check = () => {
      if (ready.test(out)) {
        clearTimeout(timer);
        proc.stdout!.off("data", check);
        proc.stderr!.off("data", check);
        ok(p);
      }
    };
    proc.stdout!.on("data", check);
    proc.stderr!.on("data", check);
    proc.once("exit", (code, sig) => {
      clearTimeout(timer);
      fail(new Error(`${name} exited (${code ?? sig}) before it was ready:\n${out.slice(-3000)}`));
    });
  });
}

/** Polls `fn` every 200 ms until it is true, for at most `ms`; whether it became true. */
export async function waitUntil(fn: () => Promise<boolean>, ms: number, everyMs = 200): Promise<boolean> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (await fn().catch(() => false)) return true;
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Runs a command in a namespace; resolves with stdout (never rejects: an error is in `code`). */
export function runIn(netns: string, argv: string[], timeoutMs = 20_000): Promise<{ out: string; code: number }> {
  return new Promise((done) => {
    execFile("ip", ["netns", "exec", netns, ...argv], { timeout: timeoutMs, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      done({ out: `${stdout}${err ? stderr : ""}`, code: err ? (typeof err.code === "number" ? err.code : 1) : 0 });
    });
  });
}

async function ip(...args: string[]): Promise<void> {
  try {
    await exec("ip", args);
  } catch (err) {
    throw new Error(`ip ${args.join(" ")}: ${((err as { stderr?: string }).stderr ?? (err as Error).message).trim()}`);
  }
}

async function alive(pid: number): Promise<boolean> {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** Ends the processes left in the world's namespaces and deletes them (a crashed run's world, or ours at the end). */
export async function removeWorldNamespaces(): Promise<string[]> {
  const { stdout } = await exec("ip", ["netns", "list"]);
  const names = stdout.split("\n").map((l) => l.split(" ")[0]!).filter((n) => n.startsWith(PREFIX));
  for (const name of names) {
    // These are processes the world started (by pid, in its own namespaces): nothing else runs there.
    const pids = (await exec("ip", ["netns", "pids", name]).then((r) => r.stdout, () => "")).split("\n").filter(Boolean).map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone already */
      }
    }
  }
  await Promise.all(names.map((name) => exec("ip", ["netns", "del", name]).catch(() => undefined)));
  return names;
}

/** Takes the world's lock: refuses while another live run holds it, cleans a dead run's world. */
async function claimWorld(): Promise<void> {
  if (existsSync(PID_FILE)) {
    const pid = Number(readFileSync(PID_FILE, "utf8").trim());
    if (pid && pid !== process.pid && (await alive(pid))) throw new Error(`another world is running (pid ${pid}, ${PID_FILE}); stop it first`);
  }
  const left = await removeWorldNamespaces();
  if (left.length) console.log(`world: removed ${left.length} namespaces left by an earlier run (${left.join(", ")})`);
  writeFileSync(PID_FILE, String(process.pid));
}

export interface World {
  dir: string;
  procs: Map<string, Proc>;
  links: Proc;
  /** Sends one control line to the link emulator and waits for its answer line. */
  linkControl(msg: Record<string, unknown>): Promise<string>;
  /** Sets a link's RTT and loss (both directions) from now on. */
  shapeLink(name: string, shape: { rttMs?: number; loss?: number }): Promise<void>;
  birdc(r: Region, ...args: string[]): Promise<string>;
  /** Cuts (or mends) the link between region r's edge box and its router: the box lives on, unreachable. */
  cutEdge(r: Region, cut: boolean): Promise<void>;
  /** Starts region r's edge box (again), resolving once it says it is ready. */
  startEdge(r: Region): Promise<void>;
  destroy(): Promise<void>;
}

const ipv4Edges = () =>
  REGIONS.map(
    (r) => `
[[edges]]
name = "${r.id}"
url = "http://${addr.edge(r)}:${HTTP_PORT}"
ipv4 = "${addr.edge(r)}"
lat = ${r.lat}
lon = ${r.lon}
`,
  ).join("");

function edgeToml(r: Region, dir: string): string {
  const t = TIMING.anycast;
  return `[edge]
name = "${r.id}"
origin = "http://${ORIGIN}:${HTTP_PORT}"
store_dir = "${join(dir, `store-${r.id}`)}"

[admin]
token = "${TOKEN}"
metrics_public = true

[control]
servers = [${[r, ...REGIONS.filter((o) => o !== r)].map((o) => `"nats://${addr.dns(o)}:${NATS.client}"`).join(", ")}]
token = "${NATS_TOKEN}"
replicas = 3

[anycast]
service = "edge"
prefixes = ["${ANYCAST_PREFIX}"]
local_as = ${EDGE_AS}
router_id = "${addr.edge(r)}"
interval_ms = ${t.interval_ms}
timeout_ms = ${t.timeout_ms}
down_after = ${t.down_after}
up_after = ${t.up_after}
withdraw_grace_ms = ${t.withdraw_grace_ms}
run_dir = "${join(dir, `anycast-${r.id}`)}"
metrics_listen = "127.0.0.1:0"

[[anycast.neighbors]]
name = "router"
address = "${addr.router(r)}"
as = ${65000 + r.n}
local_address = "${addr.edge(r)}"
# The router notices a box it can no longer reach only when this runs out (BIRD's default: 240 s).
hold_time = ${t.hold_time}
${ipv4Edges()}`;
}

function dnsToml(): string {
  const h = TIMING.health;
  return `[dns]
zone = "geo.example.org"
ttl = ${TIMING.dnsTtl}
nameservers = ["ns1.geo.example.org"]
hostmaster = "hostmaster.example.org"

[dns.director]
name = "director"
answers = 2
fallback = { ipv4 = ["${ANYCAST}"] }

[dns.health]
interval_ms = ${h.interval_ms}
timeout_ms = ${h.timeout_ms}
down_after = ${h.down_after}
up_after = ${h.up_after}

[dns.rrl]
rate = 0

[geoip]
city = "world.mmdb"
embedded = false
watch_interval_ms = 0
${ipv4Edges()}`;
}

function routerBird(r: Region): string {
  const sessions = LINKS.filter((l) => l.a === r.id || l.b === r.id).map((l) => {
    const side = l.a === r.id ? "a" : "b";
    const other = region(side === "a" ? l.b : l.a);
    return `protocol bgp to_${other.id} {
  local ${linkAddr(l, side)} as ${65000 + r.n};
  neighbor ${linkAddr(l, side === "a" ? "b" : "a")} as ${65000 + other.n};
  hold time 9; keepalive time 3;
  connect delay time 1; connect retry time 2; error wait time 1, 4;
  # The nearer region first (local preference falls with the link's RTT), as a network's own costs would say;
  # AS paths alone tie, and BGP would break the tie by router id, not by distance.
  ipv4 { import filter { bgp_local_pref = ${1000 - Math.round(l.rttMs)}; accept; }; export all; };
}`;
  });
  return `router id ${addr.router(r)};
log stderr all;
timeformat protocol iso long;
protocol device {}
# BGP's best routes (the anycast prefix) into this router's kernel table.
protocol kernel { ipv4 { import none; export all; }; }
protocol bgp edge {
  local ${addr.router(r)} as ${65000 + r.n};
  neighbor ${addr.edge(r)} as ${EDGE_AS};
  connect delay time 1; connect retry time 1; error wait time 1, 2;
  ipv4 { import filter { bgp_local_pref = 1000; accept; }; export none; };
}
${sessions.join("\n")}
`;
}

/** Builds the world under a temp folder; on any failure everything started so far is destroyed. */
export async function buildWorld(opts: { log?: (s: string) => void } = {}): Promise<World> {
  const say = opts.log ?? (() => undefined);
  await claimWorld();
  const dir = mkdtempSync(join(tmpdir(), "parrot-world-"));
  const procs = new Map<string, Proc>();
  let links: Proc | undefined;
  const log = (name: string) => join(dir, `${name}.log`);
  const startEdge = async (r: Region) => {
    procs.set(
      `edge-${r.id}`,
      await startIn(ns.edge(r), `edge-${r.id}`, [process.execPath, "scripts/edge.ts", "--config", join(dir, `edge-${r.id}.toml`), "--host", "0.0.0.0", "--port", String(HTTP_PORT)], /edge ready: /, log(`edge-${r.id}`), 120_000),
    );
  };
  const destroy = async () => {
    await Promise.allSettled([...procs.values()].reverse().map((p) => p.stop()));
    if (links) {
      links.proc.stdin?.end();
      await links.stop();
    }
    await removeWorldNamespaces();
    if (process.env.WORLD_KEEP_LOGS) console.log(`world: logs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
    if (existsSync(PID_FILE) && readFileSync(PID_FILE, "utf8").trim() === String(process.pid)) rmSync(PID_FILE, { force: true });
  };
  try {
    // Namespaces and the regions' LANs.
    const hosts = (r: Region) =>
      [
        [ns.edge(r), addr.edge(r)],
        [ns.dns(r), addr.dns(r)],
        [ns.client(r), addr.client(r)],
        ...(r.id === "us" ? [[ns.origin, ORIGIN]] : []),
      ] as [string, string][];
    for (const r of REGIONS) {
      const rt = ns.router(r);
      await ip("netns", "add", rt);
      await ip("-n", rt, "link", "set", "lo", "up");
      // No ICMP redirects: the client and the edge box share the router's LAN, so a router forwarding the client's
      // anycast packets to its own edge told the client to send them to the box directly (a host route the client
      // keeps for 300 s); when that box was cut off, the client's anycast requests went on into the cut, whatever
      // BGP chose (the cut-off test's "anycast never served again"). Set before br0 exists, which inherits it.
      await exec("ip", ["netns", "exec", rt, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0"]);
      await ip("-n", rt, "link", "add", "br0", "type", "bridge");
      await ip("-n", rt, "addr", "add", `${addr.router(r)}/24`, "dev", "br0");
      await ip("-n", rt, "link", "set", "br0", "up");
      for (const [i, [name, a]] of hosts(r).entries()) {
        await ip("netns", "add", name);
        await ip("-n", name, "link", "set", "lo", "up");
        await ip("-n", rt, "link", "add", `h${i}`, "type", "veth", "peer", "name", "eth0", "netns", name);
        await ip("-n", rt, "link", "set", `h${i}`, "master", "br0", "up");
        await ip("-n", name, "addr", "add", `${a}/24`, "dev", "eth0");
        await ip("-n", name, "link", "set", "eth0", "up");
        await ip("-n", name, "route", "add", "default", "via", addr.router(r));
      }
      await ip("-n", ns.edge(r), "addr", "add", `${ANYCAST}/32`, "dev", "lo");
    }
    // The long links: TUN pairs held by the emulator, moved into the routers.
    const devs = LINKS.flatMap((l) => [linkDev(l, "a"), linkDev(l, "b")]);
    const specs = LINKS.map((l) => ({ name: linkName(l), a: linkDev(l, "a"), b: linkDev(l, "b"), rttMs: l.rttMs, loss: 0, queuePackets: 4000 }));
    links = await startIn(undefined, "links", ["python3", join(ROOT, "src/world/tun-open.py"), ...devs, "--", process.execPath, join(ROOT, "src/world/link-host.ts"), JSON.stringify(specs)], /links ready/, log("links"), 20_000, "pipe");
    for (const l of LINKS) {
      for (const side of ["a", "b"] as const) {
        const r = region(side === "a" ? l.a : l.b);
        const dev = linkDev(l, side);
        await ip("link", "set", dev, "netns", ns.router(r));
        await ip("-n", ns.router(r), "addr", "add", linkAddr(l, side), "peer", linkAddr(l, side === "a" ? "b" : "a"), "dev", dev);
        await ip("-n", ns.router(r), "link", "set", dev, "up");
        const other = region(side === "a" ? l.b : l.a);
        await ip("-n", ns.router(r), "route", "add", `10.${other.n}.0.0/24`, "dev", dev);
      }
    }
    say(`world: namespaces, LANs and long links up (${/no real-time priority/.test(links.output()) ? "links WITHOUT real-time priority (not permitted): they lag when the CPU is busy" : "links at real-time priority"})`);
    checkWorldGeoip(GEOIP_FIXTURE);
    copyFileSync(GEOIP_FIXTURE, join(dir, "world.mmdb"));
    // Routers (BIRD), the origin, DNS nodes and edge boxes.
    for (const r of REGIONS) {
      writeFileSync(join(dir, `router-${r.id}.conf`), routerBird(r));
      procs.set(
        `router-${r.id}`,
        await startIn(ns.router(r), `router-${r.id}`, ["/usr/sbin/bird", "-f", "-c", join(dir, `router-${r.id}.conf`), "-s", join(dir, `router-${r.id}.ctl`)], undefined, log(`router-${r.id}`)),
      );
    }
    // The control plane: one JetStream server per region (beside its DNS node), routed to each other over the long links.
    // Each pair of servers has one dialing side, in a ring (eu → us → ap → eu): when both dial at once across a
    // long link, each may keep the other's connection and close its own as a duplicate, and with 350 ms between eu
    // and ap their retries met again for a minute (no route between them, JetStream stalled, purges unapplied).
    const routesOf = (r: Region) => [REGIONS[(REGIONS.indexOf(r) + 1) % REGIONS.length]!].map((o) => `nats-route://${addr.dns(o)}:${NATS.route}`);
    await Promise.all(
      REGIONS.map(async (r) => {
        const routes = routesOf(r);
        const natsDir = join(dir, `nats-${r.id}`);
        mkdirSync(natsDir, { recursive: true });
        const conf = natsServerConfig({ dir: natsDir, serverName: r.id, host: addr.dns(r), port: NATS.client, httpPort: NATS.http, token: NATS_TOKEN, cluster: { name: "world", port: NATS.route, routes } });
        writeFileSync(join(natsDir, "nats.conf"), conf);
        procs.set(`nats-${r.id}`, await startIn(ns.dns(r), `nats-${r.id}`, ["nats-server", "-c", join(natsDir, "nats.conf")], /Server is ready/, log(`nats-${r.id}`)));
      }),
    );
    for (const r of REGIONS) {
      const healthy = await waitUntil(async () => (await runIn(ns.dns(r), ["curl", "-sf", "--max-time", "2", `http://${addr.dns(r)}:${NATS.http}/healthz`])).code === 0, 60_000);
      if (!healthy) throw new Error(`nats-server ${r.id} has no healthy JetStream within 60 s:\n${procs.get(`nats-${r.id}`)!.output().slice(-2000)}`);
    }
    say("world: NATS JetStream cluster across the regions up");
    procs.set("origin", await startIn(ns.origin, "origin", [process.execPath, "scripts/demo-origin.ts", "--host", ORIGIN, "--port", String(HTTP_PORT)], /demo origin ready/, log("origin")));
    writeFileSync(join(dir, "dns.toml"), dnsToml());
    const starts: Promise<void>[] = [];
    for (const r of REGIONS) {
      starts.push(
        startIn(ns.dns(r), `dns-${r.id}`, [process.execPath, "scripts/dns.ts", "--config", join(dir, "dns.toml"), "--host", addr.dns(r), "--dns-port", "53", "--port", "8053"], /^dns http /m, log(`dns-${r.id}`)).then((p) => void procs.set(`dns-${r.id}`, p)),
      );
      writeFileSync(join(dir, `edge-${r.id}.toml`), edgeToml(r, dir));
    }
    await Promise.all(starts);
    say("world: routers, origin and DNS nodes up");
    // At once: most of a box's start is waiting for its control agent's catch-up across the links.
    await Promise.all(REGIONS.map((r) => startEdge(r)));
    say("world: edge boxes up");
  } catch (err) {
    await destroy();
    throw err;
  }
  const pending: ((line: string) => void)[] = [];
  links.proc.stdout!.on("data", (c: Buffer) => {
    for (const line of c.toString().split("\n")) if (/^(ok|error|stats) /.test(line)) pending.shift()?.(line);
  });
  const linkControl = (msg: Record<string, unknown>) =>
    new Promise<string>((ok, fail) => {
      const t = setTimeout(() => fail(new Error("link emulator did not answer")), 5000);
      pending.push((line) => (clearTimeout(t), ok(line)));
      links!.proc.stdin!.write(`${JSON.stringify(msg)}\n`);
    });
  return {
    dir,
    procs,
    links,
    linkControl,
    async shapeLink(name, shape) {
      const answer = await linkControl({ link: name, ...shape });
      if (!answer.startsWith("ok")) throw new Error(`link ${name}: ${answer}`);
    },
    async birdc(r, ...args) {
      const { stdout } = await exec("birdc", ["-s", join(dir, `router-${r.id}.ctl`), ...args]);
      return stdout;
    },
    startEdge,
    // h0 is the router's end of the edge's veth (hosts() lists the edge first).
    cutEdge: (r, cut) => ip("-n", ns.router(r), "link", "set", "h0", cut ? "down" : "up"),
    destroy,
  };
}

/** The link between two regions, by name as the emulator knows it. */
export function linkBetween(a: Region["id"], b: Region["id"]): string {
  const l = LINKS.find((x) => (x.a === a && x.b === b) || (x.a === b && x.b === a));
  if (!l) throw new Error(`no link between ${a} and ${b}`);
  return linkName(l);
}

export { region };
