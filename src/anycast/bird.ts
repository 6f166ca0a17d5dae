/**
 * BIRD 2 as this box's BGP speaker (Node host): the generated config checked with `bird -p`, BIRD run in the
 * foreground under `setpriv --pdeathsig KILL`, so it dies with the process that started it (the announcer) — a
 * killed announcer cannot leave a speaker announcing — and controlled through birdc on its own control socket.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { birdc, bgpState, parseProtocols } from "./birdc.ts";
import { peerProtocol } from "./bird-config.ts";
import type { Speaker, SpeakerStatus } from "./controller.ts";

export interface BirdOptions {
  bird: string;
  birdc: string;
  configPath: string;
  socketPath: string;
  /** The static protocols holding the prefixes (anycast4 / anycast6). */
  staticProtocols: string[];
  /** Neighbor names from cdn.toml (their protocols are peer_<name>). */
  neighbors: string[];
  /** BIRD's own log lines (stderr) and this module's notes. */
  log: (line: string) => void;
}

export class BirdSpeaker implements Speaker {
  private readonly o: BirdOptions;
  private proc: ChildProcess | undefined;
  private stopped = false;

  constructor(options: BirdOptions) {
    this.o = options;
  }

  /** BIRD's pid while it runs. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Checks the config, makes sure no other BIRD owns the control socket, starts BIRD and waits for its socket. */
  async start(): Promise<void> {
    await checkConfig(this.o.bird, this.o.configPath);
    if (await birdc(this.o.birdc, this.o.socketPath, ["show", "status"], 2000).then(() => true, () => false)) {
      throw new Error(`another BIRD answers on ${this.o.socketPath}: stop it, or give this box its own [anycast] run_dir`);
    }
    rmSync(this.o.socketPath, { force: true });
    const proc = spawn("setpriv", ["--pdeathsig", "KILL", "--", this.o.bird, "-f", "-c", this.o.configPath, "-s", this.o.socketPath], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.proc = proc;
    let output = "";
    const onData = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
      for (const line of chunk.toString().split("\n")) if (line.trim()) this.o.log(`bird: ${line}`);
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
    proc.once("exit", (code, signal) => {
      if (this.proc === proc) this.proc = undefined;
      if (!this.stopped) this.o.log(`bird: pid ${proc.pid} exited (${code ?? signal}); the announcer's watchdog starts it again`);
    });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`BIRD exited at start (${proc.exitCode ?? proc.signalCode}): ${output.trim()}`);
      if (await birdc(this.o.birdc, this.o.socketPath, ["show", "status"], 2000).then(() => true, () => false)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    proc.kill("SIGKILL");
    throw new Error(`BIRD's control socket ${this.o.socketPath} did not answer within 10 s: ${output.trim()}`);
  }

  async status(): Promise<SpeakerStatus> {
    if (!this.proc) throw new Error("BIRD is not running");
    const rows = parseProtocols(await birdc(this.o.birdc, this.o.socketPath, ["show", "protocols"]));
    const byName = new Map(rows.map((r) => [r.name, r]));
    const statics = this.o.staticProtocols.map((n) => byName.get(n));
    if (statics.some((r) => !r)) throw new Error(`BIRD does not know protocols ${this.o.staticProtocols.join(", ")}`);
    return {
      routesEnabled: statics.every((r) => r!.state === "up"),
      sessions: this.o.neighbors.map((neighbor) => {
        const row = byName.get(peerProtocol(neighbor));
        return row ? { neighbor, state: bgpState(row), info: row.info } : { neighbor, state: "Unknown", info: "not in BIRD" };
      }),
    };
  }

  async setRoutes(enabled: boolean): Promise<void> {
    for (const name of this.o.staticProtocols) {
      const out = await birdc(this.o.birdc, this.o.socketPath, [enabled ? "enable" : "disable", name]);
      if (!new RegExp(`^${name}: (already )?${enabled ? "enabled" : "disabled"}`, "m").test(out)) {
        throw new Error(`birdc ${enabled ? "enable" : "disable"} ${name}: ${out.trim()}`);
      }
    }
  }

  /** Kills BIRD (its sessions drop: routers withdraw at once) and starts it again with the routes disabled. */
  async restart(reason: string): Promise<void> {
    if (this.stopped) return;
    this.o.log(`bird: restarting (${reason})`);
    await this.kill("SIGKILL");
    await this.start();
  }

  /** Ends BIRD: SIGTERM (it closes its sessions with a Cease notification), SIGKILL after 5 s. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.kill("SIGTERM");
  }

  private async kill(signal: NodeJS.Signals): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** `bird -p -c file`: BIRD's own parse of the generated config; rejects with BIRD's message. */
export function checkConfig(bird: string, configPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(bird, ["-p", "-c", configPath], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout!.on("data", (c: Buffer) => (out += c));
    p.stderr!.on("data", (c: Buffer) => (out += c));
    p.once("error", (err) => reject(new Error(`cannot run ${bird}: ${err.message}`)));
    p.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${configPath}: BIRD rejects the generated config: ${out.trim()}`))));
  });
}
