/**
 * `npm start`'s mirror redirector: two demo mirrors (the demo origin's content served again on loopback ports: one
 * complete "London" copy, one "New York" copy of the ISOs only) and the redirector in front of them, with the first
 * local edge as the CDN. A config that has its own [redirector] runs that instead (its mirrors as configured).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify as stringifyToml } from "smol-toml";
import { demoOrigin } from "../demo-origin/origin.ts";
import { runRedirector, type RedirectorHost } from "./redirector-host.ts";
import { serveFetch, type Served } from "./serve-fetch.ts";

export interface DemoRedirector {
  host: RedirectorHost;
  mirrors: { name: string; url: string; note: string }[];
  close(): Promise<void>;
}

/**
 * Starts the demo mirrors (unless `raw` has a [redirector]) and the redirector on `port`; writes its config to
 * `<stateDir>/redirector.toml` (the effective cdn.toml plus the demo tables), its log to `redirector.log`.
 */
export async function startDemoRedirector(opts: { raw: Record<string, unknown>; originUrl: string; cdnUrl: string; stateDir: string; port: number; log: (line: string) => void }): Promise<DemoRedirector> {
  const raw = structuredClone(opts.raw);
  const served: Served[] = [];
  const mirrors: DemoRedirector["mirrors"] = [];
  if (!raw.redirector) {
    const eu = await serveFetch(demoOrigin, { port: 0 });
    const us = await serveFetch(demoOrigin, { port: 0 });
    served.push(eu, us);
    mirrors.push({ name: "demo-mirror-lon", url: eu.url, note: "complete" }, { name: "demo-mirror-nyc", url: us.url, note: "ISOs only" });
    raw.mirrors = [
      { name: "demo-mirror-lon", url: `${eu.url}/`, lat: 51.51, lon: -0.13, country: "GB" },
      { name: "demo-mirror-nyc", url: `${us.url}/`, lat: 40.71, lon: -74.01, country: "US", paths: ["/iso/**"] },
    ];
    raw.redirector = {
      origin: opts.originUrl,
      cdn: opts.cdnUrl,
      paths: ["/iso/**", "/debian/**"],
      indexes: [
        { path: "/iso/SHA256SUMS", kind: "sha256sums" },
        { path: "/debian/dists/parrot/main/binary-amd64/Packages", kind: "packages" },
      ],
      apt_mirrorlist: "/debian/mirrors.txt",
      apt_archive: "/debian/",
    };
    // Clients of the demo are on loopback, which no GeoIP data places: the embedded data (170 MB) is not loaded for
    // nothing. The mirrors tie on distance and share clients by weight.
    const geoip = (raw.geoip ?? {}) as Record<string, unknown>;
    if (!geoip.city && !geoip.asn) raw.geoip = { ...geoip, embedded: false };
  }
  const configPath = join(opts.stateDir, "redirector.toml");
  writeFileSync(configPath, `# Written by npm start: the effective cdn.toml with the demo mirrors; rewritten at every start.\n${stringifyToml(raw)}`, { mode: 0o600 });
  try {
    const host = await runRedirector({ configPath, port: opts.port, host: "127.0.0.1", log: opts.log });
    return {
      host,
      mirrors,
      close: async () => {
        await host.close();
        await Promise.all(served.map((s) => s.close()));
      },
    };
  } catch (err) {
    await Promise.all(served.map((s) => s.close()));
    throw err;
  }
}
