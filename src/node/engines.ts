/**
 * The engines `npm start` runs only when they are installed: HAProxy and openssl (each edge's front door: HTTPS,
 * HTTP/2, the run's local CA), Caddy (HTTP/3 beside it), nats-server (the JetStream control plane) and BIRD (anycast, when the config asks for
 * it). A fresh machine with none of them still gets the CDN over HTTP; each engine left out costs one line saying
 * what to install, never a failed start.
 */
import { statSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";

/** Whether `command` (a name looked up on PATH, or a path) is an executable file. */
export function installed(command: string, path = process.env.PATH ?? ""): boolean {
  const candidates = isAbsolute(command) || command.includes("/") ? [command] : path.split(delimiter).filter(Boolean).map((d) => join(d, command));
  return candidates.some((c) => {
    const st = statSync(c, { throwIfNoEntry: false });
    return st !== undefined && st.isFile() && (st.mode & 0o111) !== 0;
  });
}

/** The parts of npm start's effective config (as parsed TOML) that need an engine. */
export interface DemoEngineTables {
  sites?: unknown[];
  frontdoor?: Record<string, unknown>;
  anycast?: Record<string, unknown>;
}

/**
 * Leaves out of `raw` what needs an engine that is not installed (`has` says which are), and returns one line for
 * each part left out. With the front door on, `raw.sites` is what the caller set (its own or the demo site).
 */
export function leaveOutMissingEngines(raw: DemoEngineTables, has: (command: string) => boolean): string[] {
  const notes: string[] = [];
  if (raw.sites?.length) {
    const missing = ["haproxy", "openssl"].filter((c) => !has(c));
    if (missing.length) {
      delete raw.sites;
      notes.push(`HTTPS        off, HTTP only: apt-get install ${missing.join(" ")} for HTTPS and HTTP/2 through each edge's front door`);
    } else if (raw.frontdoor?.http3 !== false && !has("caddy")) {
      // Said once here rather than by every edge's front door.
      raw.frontdoor = { ...raw.frontdoor, http3: false };
      notes.push("HTTP/3       off: apt-get install caddy for HTTP/3 (QUIC) beside each edge's front door");
    }
  }
  if (raw.anycast) {
    const bird = typeof raw.anycast.bird === "string" ? raw.anycast.bird : "/usr/sbin/bird";
    const birdc = typeof raw.anycast.birdc === "string" ? raw.anycast.birdc : "/usr/sbin/birdc";
    if (!has(bird) || !has(birdc)) {
      delete raw.anycast;
      notes.push(`anycast      off: apt-get install bird2 for the [anycast] announcements (${bird} and ${birdc})`);
    }
  }
  return notes;
}
