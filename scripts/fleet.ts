/**
 * npm run fleet -- push FILE [--config cdn.toml] [--canary NAME…| --canary-fraction F] [--window S]
 *                  [--probe-path /] [--probe-timeout MS] [--timeout S]
 * npm run fleet -- status | rollback | promote [--config cdn.toml] [--timeout S]
 * npm run fleet -- keys --dir DIR --box NAME… [--issuer NAME] [--dns NAME…] [--redirector NAME…]
 * npm run fleet -- geoip push FILE.mmdb | geoip rollback  [--config cdn.toml] [--timeout S]
 * The fleet's configuration through NATS JetStream (`[control]`; boxes with `[control] fleet = true` follow it):
 *   push      validates FILE (every schema, every [[edges]] box's view), stores it as the next version, rolls it
 *             out to the canaries (named, or the first ceil(F × n) running boxes, default one), waits for their
 *             health window (--window seconds, default 10), then every box; a canary that refuses it or whose
 *             health regresses rolls it back (exit 1). --config: how to reach NATS (default FILE itself).
 *   status    the rollout and, per box, the version it runs and why (applied, refused, rolled back)
 *   rollback  every box back to the version before the current one
 *   promote   a version left in its canary stage (the push command stopped) to every box
 *   keys      an nkey per box and DNS node and one for the operator (DIR/<name>.nk, DIR/users.json): each box's
 *             credentials may publish only its own heartbeat, drain, status and curve key, never a purge, a config
 *             or a certificate; --issuer NAME: that box's key may also publish the certificates ([acme] issuer)
 * Exit 0 done, 1 rolled back / not applied everywhere / control plane unreachable, 2 bad arguments or config.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { moveCommand, pushCommand, statusCommand } from "../src/control/fleet-command.ts";
import { geoipPushCommand, geoipRollbackCommand, geoipStatusCommand } from "../src/control/geoip-command.ts";
import { keysCommand } from "../src/control/keys-command.ts";
import { loadConfigFile } from "../src/node/config-file.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    config: { type: "string" },
    canary: { type: "string", multiple: true },
    "canary-fraction": { type: "string" },
    window: { type: "string", default: "10" },
    "probe-path": { type: "string", default: "/" },
    "probe-timeout": { type: "string", default: "3000" },
    timeout: { type: "string", default: "60" },
    dir: { type: "string" },
    box: { type: "string", multiple: true },
    dns: { type: "string", multiple: true },
    issuer: { type: "string" },
    redirector: { type: "string", multiple: true },
  },
});

function usage(message: string): never {
  console.error(`fleet: ${message}`);
  console.error("usage: npm run fleet -- push FILE [--canary NAME…] | status | rollback | promote  [--config cdn.toml]");
  process.exit(2);
}
const number = (name: string, text: string, min: number, max: number) => {
  const n = Number(text);
  if (!(Number.isFinite(n) && n >= min && n <= max)) usage(`--${name} must be a number from ${min} to ${max}, not ${text}`);
  return n;
};

const [command, file] = positionals;
const timeoutMs = number("timeout", values.timeout!, 1, 86_400) * 1000;
const say = (line: string) => console.log(line);
const shout = (line: string) => console.error(line);
const connectWith = (fallback: string) => {
  const loaded = loadConfigFile(values.config ?? fallback);
  if (!loaded.config.control) usage(`${loaded.path} has no [control] table: the fleet travels through NATS JetStream`);
  return loaded.config;
};

let code: number;
if (command === "push") {
  if (!file) usage("push needs the file to push");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    usage(`cannot read ${file}: ${(err as Error).message}`);
  }
  const fraction = values["canary-fraction"] === undefined ? undefined : number("canary-fraction", values["canary-fraction"], 0, 1);
  code = await pushCommand(
    text,
    file,
    connectWith(file),
    {
      canaries: values.canary,
      canaryFraction: fraction,
      windowMs: number("window", values.window!, 0, 3_600) * 1000,
      probePath: values["probe-path"]!.startsWith("/") ? values["probe-path"]! : usage("--probe-path must start with /"),
      probeTimeoutMs: number("probe-timeout", values["probe-timeout"]!, 1, 60_000),
      timeoutMs,
    },
    say,
    shout,
  );
} else if (command === "keys") {
  if (!values.dir) usage("keys needs --dir DIR (where the seeds and users.json go)");
  const wanted = [
    ...(values.box ?? []).filter((name) => name !== values.issuer).map((name) => ({ name, role: "box" as const })),
    ...(values.issuer ? [{ name: values.issuer, role: "issuer" as const }] : []),
    ...(values.dns ?? []).map((name) => ({ name, role: "dns" as const })),
    ...(values.redirector ?? []).map((name) => ({ name, role: "redirector" as const })),
  ];
  if (!wanted.length) usage("keys needs --box NAME (and/or --dns NAME, --redirector NAME)");
  try {
    keysCommand(values.dir, wanted, say);
    code = 0;
  } catch (err) {
    usage((err as Error).message);
  }
} else if (command === "geoip") {
  // A City database for every DNS node and edge box with [geoip] fleet = true (src/control/geoip-command.ts).
  const [, sub, mmdb] = positionals;
  if (sub === "push") code = mmdb ? await geoipPushCommand(mmdb, connectWith("cdn.toml"), timeoutMs, say, shout) : usage("geoip push needs the .mmdb file");
  else if (sub === "rollback") code = await geoipRollbackCommand(connectWith("cdn.toml"), timeoutMs, say, shout);
  else usage("geoip push FILE.mmdb | geoip rollback");
} else if (command === "status") {
  const config = connectWith("cdn.toml");
  code = await statusCommand(config, say, shout);
  if (code === 0) code = await geoipStatusCommand(config, say, shout);
}
else if (command === "rollback" || command === "promote") code = await moveCommand(command, connectWith("cdn.toml"), timeoutMs, say, shout);
else usage(command ? `unknown command ${command}` : "name a command");
process.exit(code);
