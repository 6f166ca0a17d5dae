import { mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { parseBootId } from "./boot.ts";
import { prepareControl, unixSocketFetch } from "./host.ts";

const dir = mkdtempSync(join(tmpdir(), "parrot-control-host-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const CONTROL = '[control]\nservers = ["nats://127.0.0.1:4222"]\n';

describe("prepareControl", () => {
  it("refuses a config without an admin token, naming the field", () => {
    expect(() => prepareControl(parseConfig(CONTROL), join(dir, "a"))).toThrow(/^admin\.token: /);
  });

  it("makes a box start id and a socket path in a private run directory (a short one when the path is too long)", () => {
    const config = parseConfig(`${CONTROL}[admin]\ntoken = "host-test-token-0123456789"`);
    const p = prepareControl(config, join(dir, "run"));
    expect(parseBootId(p.bootId)?.at).toBeGreaterThan(Date.now() - 60_000);
    expect(p.socketPath).toBe(join(dir, "run", "control.sock"));
    expect(statSync(join(dir, "run")).mode & 0o777).toBe(0o700);
    const long = prepareControl(config, join(dir, "x".repeat(120)));
    expect(long.socketPath.length).toBeLessThan(108);
  });
});

describe("unixSocketFetch", () => {
  it("carries a request to a unix socket and its answer back", async () => {
    const socketPath = join(dir, "echo.sock");
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => res.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify({ path: req.url, body })));
    });
    await new Promise<void>((r) => server.listen(socketPath, () => r()));
    try {
      const res = await unixSocketFetch(socketPath)(new Request("http://control/purge?x=1", { method: "POST", body: '{"all":true}' }));
      expect(res.status).toBe(202);
      expect(await res.json()).toEqual({ path: "/purge?x=1", body: '{"all":true}' });
    } finally {
      server.close();
    }
  });
});
