/**
 * The generated bird.conf as the real BIRD reads it (`bird -p`), and a box command that cannot announce as
 * configured refusing to start with a message that says why.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { birdConfig } from "../../src/anycast/bird-config.ts";
import { parseConfig } from "../../src/config/config.ts";
import { ROOT } from "../../src/node/children.ts";
import { BIRD } from "../support/bird-router.ts";

const dir = mkdtempSync(join(tmpdir(), "parrot-anycast-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { cwd: ROOT, timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, out: `${stdout}${stderr}` }),
    ),
  );
}

const VARIANTS: Record<string, string> = {
  "two families, communities, MED, prepends, password, multihop, hold time": `
[anycast]
service = "edge"
prefixes = ["198.51.100.0/24", "203.0.113.0/24", "2001:db8:100::/48"]
local_as = 4200000001
router_id = "192.0.2.10"
communities = ["64512:100", "65535:65281", "4200000001:7:8"]
med = 4294967295
prepend = 3
[[anycast.neighbors]]
name = "transit1"
address = "192.0.2.1"
as = 64511
local_address = "192.0.2.10"
local_port = 1179
multihop = 2
hold_time = 9
password = "s3cret pass!"
[[anycast.neighbors]]
name = "transit1_v6"
address = "2001:db8::1"
local_address = "2001:db8::10"
as = 64511
`,
  "one IPv4 prefix, one neighbor, nothing else": `
[anycast]
service = "dns"
prefixes = ["192.0.2.53/32"]
local_as = 64512
[[anycast.neighbors]]
name = "r"
address = "192.0.2.1"
as = 64511
`,
};

describe("the generated bird.conf", () => {
  for (const [name, toml] of Object.entries(VARIANTS)) {
    it(`is accepted by BIRD: ${name}`, async () => {
      const file = join(dir, `${name.replace(/\W+/g, "-")}.conf`);
      writeFileSync(file, birdConfig(parseConfig(toml).anycast!));
      const { code, out } = await run(BIRD, ["-p", "-c", file]);
      expect(out).toBe("");
      expect(code).toBe(0);
    });
  }
});

describe("a box that cannot announce as configured", () => {
  const edgeToml = (anycast: string) => `[edge]\nname = "bad"\norigin = "http://127.0.0.1:9"\nstore_dir = "${join(dir, "store")}"\n${anycast}`;
  const anycast = (extra: string, prefix = "198.51.100.0/24") =>
    `[anycast]\nservice = "edge"\nprefixes = ["${prefix}"]\nlocal_as = 64512\nrun_dir = "${join(dir, "run")}"\n${extra}\n[[anycast.neighbors]]\nname = "r"\naddress = "127.0.0.1"\nas = 64511\n`;

  it("stops at start on a bad [anycast], naming the field", async () => {
    writeFileSync(join(dir, "bad-prefix.toml"), edgeToml(anycast("", "198.51.100.7/24")));
    const { code, out } = await run(process.execPath, ["scripts/edge.ts", "--config", join(dir, "bad-prefix.toml"), "--port", "0"]);
    expect(code).toBe(2);
    expect(out).toContain('anycast.prefixes[0]: "198.51.100.7/24" has host bits set: write the network address');
  });

  it("stops, and stops serving, when BIRD cannot run", async () => {
    writeFileSync(join(dir, "no-bird.toml"), edgeToml(anycast(`bird = "${join(dir, "no-such-bird")}"`)));
    const { code, out } = await run(process.execPath, ["scripts/edge.ts", "--config", join(dir, "no-bird.toml"), "--port", "0"]);
    expect(code).toBe(2);
    expect(out).toMatch(/anycast: cannot run .*no-such-bird/);
    expect(out).not.toContain("edge ready");
  });
});
