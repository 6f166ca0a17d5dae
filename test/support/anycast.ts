/** For the anycast e2e tests: the `[anycast]` table for a box peering with a test router, and bounded polling. */
import type { BirdRouter } from "./bird-router.ts";

export const ANYCAST_PREFIX = "198.51.100.0/24";
export const BOX_AS = 64512;

export interface AnycastTiming {
  interval_ms: number;
  timeout_ms: number;
  down_after: number;
  up_after: number;
  withdraw_grace_ms: number;
}

/** `[anycast]` for `service`, one neighbor (the router), the box's speaker on boxAddress:boxPort. */
export function anycastToml(o: {
  service: "edge" | "dns";
  router: BirdRouter;
  boxAddress: string;
  boxPort: number;
  runDir: string;
  timing: AnycastTiming;
}): string {
  const t = o.timing;
  return `
[anycast]
service = "${o.service}"
prefixes = ["${ANYCAST_PREFIX}"]
local_as = ${BOX_AS}
router_id = "192.0.2.1"
communities = ["${BOX_AS}:100", "${BOX_AS}:1:2"]
med = 50
prepend = 1
interval_ms = ${t.interval_ms}
timeout_ms = ${t.timeout_ms}
down_after = ${t.down_after}
up_after = ${t.up_after}
withdraw_grace_ms = ${t.withdraw_grace_ms}
run_dir = "${o.runDir}"
metrics_listen = "127.0.0.1:0"

[[anycast.neighbors]]
name = "router"
address = "${o.router.address}"
as = ${o.router.as}
port = ${o.router.port}
local_address = "${o.boxAddress}"
local_port = ${o.boxPort}
multihop = 2
`;
}

/**
 * Calls `fn` every `everyMs` until it returns something other than undefined, for at most `timeoutMs`. Returns the
 * value and when it came (performance.now()), or undefined.
 */
export async function waitFor<T>(fn: () => Promise<T | undefined>, timeoutMs: number, everyMs = 50): Promise<{ value: T; at: number } | undefined> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await fn().catch(() => undefined);
    if (value !== undefined) return { value, at: performance.now() };
    if (performance.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Whether a process with this pid exists (and is not a zombie). */
export async function alive(pid: number): Promise<boolean> {
  const { readFile } = await import("node:fs/promises");
  try {
    return !/^State:\s+Z/m.test(await readFile(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}
