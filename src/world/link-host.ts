/**
 * The link emulator's process: forwards IP packets between pairs of TUN devices (opened by tun-open.py, which execs
 * this with LINK_FDS="name=fd,…"), each direction through a LinkDirection (delay, loss, bounded queue).
 *
 * usage: python3 tun-open.py A1 B1 A2 B2 … -- node src/world/link-host.ts '<links JSON>'
 *   links: [{ "name": "eu-us", "a": "A1", "b": "B1", "rttMs": 175.7, "loss": 0, "queuePackets": 2000 }, …]
 *
 * Prints `links ready` once it reads every device. Control on stdin, one JSON object a line, answered on stdout:
 *   {"link":"eu-us","rttMs":200,"loss":0.05}  → `ok eu-us`   (change both directions from now on)
 *   {"stats":true}                              → `stats {…}` (per link and direction: passed, lost, overflow)
 * A bad line is answered `error <reason>`; nothing crashes the process.
 */
import { read, writeSync } from "node:fs";
import { createInterface } from "node:readline";
import { LinkDirection, type LinkShape } from "./link.ts";

interface LinkSpec {
  name: string;
  a: string;
  b: string;
  rttMs: number;
  loss?: number;
  queuePackets?: number;
}

const MTU_BUFFER = 65_536;

function parseFds(text: string | undefined): Map<string, number> {
  const fds = new Map<string, number>();
  for (const part of (text ?? "").split(",").filter(Boolean)) {
    const [name, fd] = part.split("=");
    if (!name || !Number.isInteger(Number(fd))) throw new Error(`link-host: bad LINK_FDS entry "${part}"`);
    fds.set(name, Number(fd));
  }
  return fds;
}

function shapeOf(spec: Pick<LinkSpec, "rttMs" | "loss" | "queuePackets">, prev?: LinkShape): LinkShape {
  return { delayMs: spec.rttMs !== undefined ? spec.rttMs / 2 : prev!.delayMs, loss: spec.loss ?? prev?.loss ?? 0, queuePackets: spec.queuePackets ?? prev?.queuePackets ?? 2000 };
}

/** One direction's pump: packets read from `from` wait in the link, then are written to `to`. */
class Pump {
  private timer: NodeJS.Timeout | undefined;
  writeErrors = 0;
  readonly link: LinkDirection<Buffer>;
  private readonly from: number;
  private readonly to: number;
  constructor(link: LinkDirection<Buffer>, from: number, to: number) {
    this.link = link;
    this.from = from;
    this.to = to;
  }

  start(): void {
    const buf = Buffer.allocUnsafe(MTU_BUFFER);
    const loop = () =>
      read(this.from, buf, 0, buf.length, null, (err, n) => {
        if (err) return void setTimeout(loop, 50); // EIO while the device is down or being moved: try again
        if (n > 0) {
          this.link.offer(performance.now(), Buffer.from(buf.subarray(0, n)));
          this.schedule();
        }
        loop();
      });
    loop();
  }

  private schedule(): void {
    if (this.timer) return;
    const at = this.link.nextAt();
    if (at === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      for (const packet of this.link.due(performance.now())) {
        try {
          writeSync(this.to, packet); // one packet a write; in order (writes to a TUN do not block)
        } catch {
          this.writeErrors++; // the far device is down: the packet is lost, as on a real link
        }
      }
      this.schedule();
    }, Math.max(0, at - performance.now()));
  }
}

function main(): void {
  const specs = JSON.parse(process.argv[2] ?? "[]") as LinkSpec[];
  const fds = parseFds(process.env.LINK_FDS);
  const links = new Map<string, Pump[]>();
  for (const spec of specs) {
    const a = fds.get(spec.a);
    const b = fds.get(spec.b);
    if (a === undefined || b === undefined) throw new Error(`link-host: link ${spec.name}: no descriptor for ${a === undefined ? spec.a : spec.b}`);
    const pumps = [new Pump(new LinkDirection(shapeOf(spec)), a, b), new Pump(new LinkDirection(shapeOf(spec)), b, a)];
    links.set(spec.name, pumps);
  }
  for (const pumps of links.values()) for (const p of pumps) p.start();
  createInterface({ input: process.stdin }).on("line", (line) => {
    try {
      const msg = JSON.parse(line) as { link?: string; rttMs?: number; loss?: number; queuePackets?: number; stats?: boolean };
      if (msg.stats) {
        const out: Record<string, unknown> = {};
        for (const [name, [ab, ba]] of links) out[name] = { ab: { ...ab!.link.counters, writeErrors: ab!.writeErrors }, ba: { ...ba!.link.counters, writeErrors: ba!.writeErrors } };
        return void console.log(`stats ${JSON.stringify(out)}`);
      }
      const pumps = links.get(String(msg.link));
      if (!pumps) throw new Error(`no link named "${msg.link}"`);
      for (const p of pumps) p.link.setShape(shapeOf({ rttMs: msg.rttMs as number, loss: msg.loss, queuePackets: msg.queuePackets }, p.link.getShape()));
      console.log(`ok ${msg.link}`);
    } catch (err) {
      console.log(`error ${(err as Error).message}`);
    }
  });
  process.stdin.on("end", () => process.exit(0)); // the harness is gone: so are the links
  console.log("links ready");
}

main();
