/**
 * Redirector boxes sharing their scans through NATS JetStream ([control]): a real nats-server, four nginx mirrors,
 * two redirector processes (`scripts/redirector.ts --name box-a|box-b`). Which box scanned a mirror is read from the
 * mirror's access log (the scans' User-Agent names the box). Scans run only when the test asks (POST scan) or when a
 * box takes over mirrors; heartbeats every 500 ms.
 */
import { createHash, randomBytes } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlSchema } from "../../src/config/control-schema.ts";
import { FleetKv } from "../../src/control/fleet-kv.ts";
import { connectOnce } from "../../src/control/nats.ts";
import { mirrorsLayout } from "../../src/redirector/shared-state.ts";
import { startNginxOrigin, type NginxOrigin } from "../support/nginx-origin.ts";
import { startTestNats, type TestNats } from "../support/nats.ts";
import { isoRedirectorToml, startRedirectorBox, type RedirectorBox } from "../support/redirector.ts";

const TOKEN = "redirector-fleet-e2e-token";
const NATS_TOKEN = "redirector-fleet-nats-token";
const HEARTBEAT_MS = 500;
const FILES = ["a", "b", "c", "d", "e", "f"].map((n) => `/iso/parrot-${n}.iso`);
const MIRRORS = ["m1", "m2", "m3", "m4"];

interface Status {
  mirrors: { name: string; up: boolean; lastScan?: string; unknown: number; present: number }[];
  fleet?: { box: string; connected: boolean; boxes: string[]; scans: string[] };
}

describe("redirector boxes share their scans through JetStream", () => {
  let dir: string;
  let nats: TestNats;
  let origin: NginxOrigin;
  const mirrors: Record<string, NginxOrigin> = {};
  const boxes: Record<string, RedirectorBox> = {};

  const startBox = async (name: string, config = "cdn.toml") => {
    boxes[name] = await startRedirectorBox(join(dir, config), { name });
  };
  const scan = async (box: string): Promise<Status> => {
    const res = await fetch(`${boxes[box]!.url}/.well-known/cdn/scan`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    return (await res.json()) as Status;
  };
  const status = async (box: string): Promise<Status> => (await fetch(`${boxes[box]!.url}/.well-known/cdn/mirrors`)).json() as Promise<Status>;
  /** Where a box sends a download (its Location), or "cdn". */
  const where = async (box: string, path: string) => {
    const res = await fetch(`${boxes[box]!.url}${path}`, { method: "HEAD", redirect: "manual" });
    expect(res.status).toBe(302);
    return res.headers.get("x-mirror") === "cdn" ? "cdn" : res.headers.get("location")!;
  };
  /** Per mirror: which boxes sent HEADs since `marks` (their User-Agent names them). */
  const marks = () => Object.fromEntries(MIRRORS.map((n) => [n, mirrors[n]!.requests().length]));
  const scannedBy = (since: Record<string, number>) =>
    Object.fromEntries(
      MIRRORS.map((n) => [
        n,
        [...new Set(mirrors[n]!.requests().slice(since[n]).filter(([m]) => m === "HEAD").map((q) => /\((.+)\)/.exec(q[5])?.[1] ?? q[5]))].sort(),
      ]),
    );
  const until = async <T>(what: string, deadlineMs: number, check: () => Promise<T | undefined>): Promise<T> => {
    const deadline = Date.now() + deadlineMs;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        const v = await check();
        if (v !== undefined) return v;
      } catch (err) {
        last = err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what}: not within ${deadlineMs} ms ${last ? `(${(last as Error).message})` : ""}`);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "parrot-redirector-fleet-e2e-"));
    const root = join(dir, "origin");
    mkdirSync(join(root, "iso"), { recursive: true });
    const sums = FILES.map((f) => {
      const body = randomBytes(4096 + Math.floor(Math.random() * 4096));
      writeFileSync(join(root, f), body);
      return `${createHash("sha256").update(body).digest("hex")}  ${f.slice("/iso/".length)}\n`;
    });
    writeFileSync(join(root, "iso/SHA256SUMS"), sums.join(""));
    origin = await startNginxOrigin(root, join(dir, "nginx-origin"));
    for (const n of MIRRORS) {
      cpSync(root, join(dir, "mirrors", n), { recursive: true });
      mirrors[n] = await startNginxOrigin(join(dir, "mirrors", n), join(dir, `nginx-${n}`));
    }
    nats = await startTestNats(join(dir, "nats"), { token: NATS_TOKEN });
    writeFileSync(
      join(dir, "cdn.toml"),
      `[admin]
token = "${TOKEN}"

[control]
servers = ["${nats.url}"]
token = "${NATS_TOKEN}"
catch_up_timeout_ms = 5000

${isoRedirectorToml(origin.url, `scan_files_per_round = 2\nscan_timeout_ms = 5000\nfleet_heartbeat_ms = ${HEARTBEAT_MS}`)}
${MIRRORS.map((n, i) => `[[mirrors]]\nname = "${n}"\nurl = "${mirrors[n]!.url}"\nlat = ${50 + i}\nlon = 0\ncountry = "GB"\n`).join("\n")}
`,
    );
    await startBox("box-a");
    await startBox("box-b");
  }, 180_000);

  afterAll(async () => {
    for (const b of Object.values(boxes)) await b.run.stop();
    await nats?.server.stop();
    for (const m of Object.values(mirrors)) await m.stop();
    await origin?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("each mirror is scanned by exactly one box, and both boxes redirect the same way", async () => {
    // box-a started alone (it scanned everything); once it has heard box-b, the mirrors are split.
    await until("box-a hears box-b", 10_000, async () => ((await scan("box-a")).fleet?.boxes.length === 2 ? true : undefined));
    // Two files a round: a few rounds until every file of every mirror is checked.
    await until("every file checked", 30_000, async () => {
      const [a, b] = [await scan("box-a"), await scan("box-b")];
      return [...a.mirrors, ...b.mirrors].every((m) => m.unknown === 0) ? true : undefined;
    });
    const since = marks();
    const a = await scan("box-a");
    const b = await scan("box-b");
    expect([...a.fleet!.scans, ...b.fleet!.scans].sort()).toEqual(MIRRORS);
    const expected = Object.fromEntries(MIRRORS.map((n) => [n, [a.fleet!.scans.includes(n) ? "box-a" : "box-b"]]));
    // nginx writes a request's log line after its answer is sent: read the mirrors' logs until they hold the scans.
    await until("the mirrors' logs show each scanned by its owner", 5_000, async () => {
      expect(scannedBy(since)).toEqual(expected);
      return true;
    });
    // Each box holds the other's results: the same last scan per mirror, the same answers.
    await until("both boxes hold the same states", 5_000, async () => {
      const [sa, sb] = [await status("box-a"), await status("box-b")];
      if (JSON.stringify(sa.mirrors) !== JSON.stringify(sb.mirrors)) throw new Error(`${JSON.stringify(sa.mirrors.map((m) => m.lastScan))}\n${JSON.stringify(sb.mirrors.map((m) => m.lastScan))}\n${boxes["box-a"]!.run.output().slice(-3000)}\n${boxes["box-b"]!.run.output().slice(-3000)}`);
      return true;
    });
    for (const f of FILES) {
      const there = await where("box-a", f);
      expect(there).not.toBe("cdn");
      expect(await where("box-b", f)).toBe(there);
    }
  }, 120_000);

  it(`a box that dies loses its mirrors to the other within ${3 * HEARTBEAT_MS} ms plus a heartbeat and a scan`, async () => {
    const theirs = (await scan("box-b")).fleet!.scans;
    expect(theirs.length).toBeGreaterThan(0); // rendezvous over four mirror names: box-b has some
    const since = marks();
    const t0 = Date.now();
    process.kill(-boxes["box-b"]!.run.proc.pid!, "SIGKILL");
    const took = await until("box-a scans box-b's mirrors", 5 * HEARTBEAT_MS + 3_000, async () => {
      const by = scannedBy(since);
      return theirs.every((n) => by[n]!.includes("box-a")) ? Date.now() - t0 : undefined;
    });
    console.log(`handover after a crash: box-a scanned box-b's mirrors ${took} ms after the kill (heartbeat ${HEARTBEAT_MS} ms)`);
    expect((await scan("box-a")).fleet!.scans).toEqual(MIRRORS);
  }, 60_000);

  it("a restarted box redirects to mirrors from its first request (states from the bucket, not one scan round)", async () => {
    await startBox("box-b");
    // One round of its own at start checks 2 of 6 files per mirror: the rest it knows only from the bucket.
    for (const f of FILES) expect(await where("box-b", f)).not.toBe("cdn");
    expect((await status("box-b")).mirrors.every((m) => m.unknown === 0)).toBe(true);
  }, 90_000);

  it("with NATS down each box scans every mirror itself, and shares again when it returns", async () => {
    await until("box-a hears box-b again", 10_000, async () => ((await scan("box-a")).fleet?.boxes.length === 2 ? true : undefined));
    const before = boxes["box-a"]!.run.output().length;
    await nats.stop();
    try {
      // Said after this stop (not an earlier outage's line): from then on box-a owns every mirror.
      await until("box-a notices", 15_000, async () => (boxes["box-a"]!.run.output().slice(before).includes("NATS unreachable: scanning every mirror itself") ? true : undefined));
      const since = marks();
      const a = await scan("box-a");
      expect(a.fleet!.connected).toBe(false);
      // nginx writes a request's log line after its answer is sent: read the mirrors' logs until they hold the scans.
      await until("every mirror's log shows box-a's scan", 5_000, async () => {
        expect(Object.values(scannedBy(since)).every((by) => by.includes("box-a"))).toBe(true);
        return true;
      });
    } finally {
      // The later tests need NATS, whatever happened here.
      await nats.start();
    }
    await until("box-a shares again", 15_000, async () => {
      const s = await scan("box-a");
      if (!(s.fleet!.connected && s.fleet!.boxes.length === 2 && s.fleet!.scans.length < MIRRORS.length)) throw new Error(JSON.stringify(s.fleet));
      return true;
    });
  }, 90_000);

  it("without [control], a state_file gives a restarted box its mirrors' states (written by temp file and rename)", async () => {
    const solo = readFileSync(join(dir, "cdn.toml"), "utf8").replace(/\[control\][\s\S]*?(?=\[redirector\])/, "").replace("[redirector]\n", '[redirector]\nstate_file = "solo-state.json"\n');
    writeFileSync(join(dir, "solo.toml"), solo);
    await startBox("solo", "solo.toml");
    await until("every file checked", 30_000, async () => ((await scan("solo")).mirrors.every((m) => m.unknown === 0) ? true : undefined));
    await boxes["solo"]!.run.stop();
    await startBox("solo", "solo.toml");
    for (const f of FILES) expect(await where("solo", f)).not.toBe("cdn");
    expect((await status("solo")).mirrors.every((m) => m.unknown === 0)).toBe(true);
  }, 120_000);

  it("a malformed or oversized value in the bucket is ignored with a log line", async () => {
    const cfg = ControlSchema.parse({ servers: [nats.url], token: NATS_TOKEN });
    const nc = await connectOnce(cfg, "test");
    try {
      const kv = await FleetKv.open(nc, cfg, undefined, mirrorsLayout("parrot"));
      const before = await Promise.all(FILES.map((f) => where("box-a", f)));
      await kv.put("mirror.m1", "{not json");
      await kv.put("mirror.m2", JSON.stringify({ v: 1, box: "x", mirror: "m2", url: mirrors.m2!.url + "/", paths: ["/**"], lastScan: Date.now() + 60_000, failures: 0, synced: false, catalog: "0", files: 1_000_000, states: "AA==" }));
      await kv.put("box.intruder", JSON.stringify({ box: "intruder", at: "soon", state: "up", interval_ms: 1 }));
      const out = () => boxes["box-a"]!.run.output();
      await until("box-a logs them", 30_000, async () => {
        for (const line of ['"ignored":"mirror.m1","why":"not JSON"', '"ignored":"mirror.m2","why":"states: not 1000000 files"', '"ignored":"box.intruder","why":"at: not a time"'])
          if (!out().includes(line)) throw new Error(`no ${line} in\n${out().slice(-1500)}`);
        return true;
      });
      const s = await scan("box-a");
      expect(s.fleet!.boxes).not.toContain("intruder");
      expect(await Promise.all(FILES.map((f) => where("box-a", f)))).toEqual(before);
    } finally {
      await nc.close();
    }
  }, 60_000);
});
