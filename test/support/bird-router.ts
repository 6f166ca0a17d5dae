/**
 * A "router" for the anycast tests: a second real BIRD on its own loopback address and port, with one BGP session
 * to the box's speaker, importing what the box announces and exporting nothing. No kernel protocol: neither BIRD
 * touches this machine's routes. Read what it learned with `birdc show route … all` (parsed by src/anycast/birdc.ts).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomInt } from "node:crypto";
import { bgpState, birdc, parseProtocols, parseRoutes, type RouteInfo } from "../../src/anycast/birdc.ts";
import { freePort } from "./ports.ts";

export const BIRD = "/usr/sbin/bird";
export const BIRDC = "/usr/sbin/birdc";

export interface BirdRouter {
  address: string;
  port: number;
  as: number;
  socket: string;
  /** Routes for `prefix` the router learned from the box (none: withdrawn). (`show route for` fails on none.) */
  routes(prefix: string): Promise<RouteInfo[]>;
  /** The session's BGP state as the router sees it. */
  session(): Promise<string>;
  output(): string;
  stop(): Promise<void>;
}

/** Two unused loopback addresses (127.a.b.1 for the box, .2 for the router) so parallel runs do not meet. */
export function loopbackPair(): { box: string; router: string } {
  const a = randomInt(16, 250);
  const b = randomInt(1, 250);
  return { box: `127.${a}.${b}.1`, router: `127.${a}.${b}.2` };
}


/** Starts the router BIRD in `dir`, peering with the box at boxAddress:boxPort (AS boxAs). */
export async function startBirdRouter(o: { dir: string; address: string; boxAddress: string; boxPort: number; boxAs: number; as?: number }): Promise<BirdRouter> {
  mkdirSync(o.dir, { recursive: true });
  const as = o.as ?? 64511;
  const port = await freePort(o.address);
  const socket = join(o.dir, "router.ctl");
  const config = join(o.dir, "router.conf");
  writeFileSync(
    config,
    `router id 10.255.0.2;
log stderr all;
timeformat protocol iso long;
protocol device {}
# Reconnects fast after the box's speaker dies or restarts (tests, not production timers).
protocol bgp box {
  local ${o.address} port ${port} as ${as};
  neighbor ${o.boxAddress} port ${o.boxPort} as ${o.boxAs};
  strict bind on;
  multihop 2;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 2;
  ipv4 { import all; export none; };
  ipv6 { import all; export none; };
}
`,
  );
  let out = "";
  const proc: ChildProcess = spawn(BIRD, ["-f", "-c", config, "-s", socket], { stdio: ["ignore", "pipe", "pipe"] });
  proc.stdout!.on("data", (c: Buffer) => (out += c));
  proc.stderr!.on("data", (c: Buffer) => (out += c));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`router BIRD exited: ${out}`);
    if (await birdc(BIRDC, socket, ["show", "status"], 2000).then(() => true, () => false)) break;
    if (Date.now() > deadline) throw new Error(`router BIRD not answering: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    address: o.address,
    port,
    as,
    socket,
    routes: async (prefix) => parseRoutes(await birdc(BIRDC, socket, ["show", "route", "protocol", "box", "all"])).filter((r) => r.prefix === prefix),
    session: async () => {
      const row = parseProtocols(await birdc(BIRDC, socket, ["show", "protocols", "box"])).find((r) => r.name === "box");
      return row ? bgpState(row) : "Unknown";
    },
    output: () => out,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
