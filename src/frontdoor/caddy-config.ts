/**
 * HTTP/3 beside the terminator: Debian's HAProxy and nginx have no QUIC, Debian's Caddy 2.6 has (quic-go). Caddy only
 * terminates QUIC and TLS here, with the same certificate files HAProxy serves (chosen by SNI, the first site's as the
 * default), and passes every request to HAProxy's `h3` frontend on a unix socket that only this box's user can open,
 * with the QUIC client's address in X-Forwarded-For (Caddy 2.6 overwrites a client's own value when the peer is not a
 * trusted proxy, and none is configured). HAProxy takes that address as the request's source, so the sites' limits,
 * bans and logs treat an HTTP/3 client as any other. A pure function, unit-tested; rewritten at every start and
 * live change.
 */
import type { FrontDoorPlan } from "./plan.ts";

export interface CaddyConfigInput {
  plan: FrontDoorPlan;
  /** "address:port" Caddy binds, UDP for QUIC and TCP (it always binds both). */
  listen: string;
  /** The certificate files (one combined PEM per site, HAProxy's own copies) and their names; the first is the default. */
  certificates: { id: string; file: string; names: string[] }[];
  /** HAProxy's h3 frontend (unix socket). */
  upstreamSocket: string;
  /** Caddy's admin API (unix socket): the front door loads new configs through it. */
  adminSocket: string;
  /** Caddy's storage (it keeps OCSP staples and locks there). */
  dataDir: string;
}

/** The Host the front door's calls to Caddy's admin socket carry (its `admin.origins`). */
export const CADDY_ADMIN_HOST = "caddy-admin";

const secs = (ms: number) => `${Math.ceil(ms / 1000)}s`;

/** Caddy's JSON configuration. */
export function caddyConfig(input: CaddyConfigInput): Record<string, unknown> {
  const door = input.plan.door;
  if (!input.certificates.length) throw new Error("HTTP/3 needs at least one site's certificate");
  const policies = input.certificates.map((c) => ({ match: { sni: c.names }, certificate_selection: { any_tag: [c.id] } }));
  // A client without SNI, or with a name no site has, gets the first site's certificate (HAProxy does the same).
  policies.push({ certificate_selection: { any_tag: [input.certificates[0]!.id] } } as (typeof policies)[number]);
  return {
    // Its admin API on a unix socket: loads come with `Host: caddy-admin` (Caddy checks the Host of every call).
    admin: { listen: `unix/${input.adminSocket}`, origins: [CADDY_ADMIN_HOST], config: { persist: false } },
    logging: { logs: { default: { level: "INFO", writer: { output: "stderr" }, encoder: { format: "json" } } } },
    storage: { module: "file_system", root: input.dataDir },
    apps: {
      http: {
        servers: {
          h3: {
            listen: [input.listen],
            protocols: ["h1", "h2", "h3"],
            // Certificates are the front door's (files, local CA, ACME through the DNS nodes): Caddy manages none.
            automatic_https: { disable: true },
            read_header_timeout: secs(door.request_timeout_ms),
            idle_timeout: secs(door.client_timeout_ms),
            tls_connection_policies: policies,
            routes: [
              {
                handle: [
                  {
                    handler: "reverse_proxy",
                    upstreams: [{ dial: `unix/${input.upstreamSocket}` }],
                    // Bytes go on as they come (a long download, a slow origin), never held back to fill a buffer.
                    flush_interval: -1,
                    transport: { protocol: "http", dial_timeout: "5s" },
                  },
                ],
              },
            ],
          },
        },
      },
      tls: {
        certificates: { load_files: input.certificates.map((c) => ({ certificate: c.file, key: c.file, tags: [c.id] })) },
      },
    },
  };
}
