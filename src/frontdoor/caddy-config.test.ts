import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { caddyConfig, CADDY_ADMIN_HOST } from "./caddy-config.ts";
import { planFrontDoor } from "./plan.ts";
import { caddyLogLine } from "./quic.ts";

const plan = planFrontDoor(
  parseConfig(`[edge]
origin = "http://127.0.0.1:8080"
[[sites]]
names = ["www.example.org", "*.cdn.example.org"]
certificate = "local"
[[sites]]
names = ["apt.example.org"]
certificate = "local"
`),
);
const certificates = [
  { id: "www.example.org", file: "/run/certs/www.pem", names: ["www.example.org", "*.cdn.example.org"] },
  { id: "apt.example.org", file: "/run/certs/apt.pem", names: ["apt.example.org"] },
];
const config = caddyConfig({ plan, listen: "192.0.2.1:8443", certificates, upstreamSocket: "/run/h3.sock", adminSocket: "/run/caddy.sock", dataDir: "/run/caddy" }) as {
  admin: { listen: string; origins: string[] };
  apps: { http: { servers: { h3: Record<string, unknown> & { tls_connection_policies: Record<string, unknown>[]; routes: { handle: Record<string, unknown>[] }[] } } }; tls: { certificates: { load_files: unknown[] } } };
};
const server = config.apps.http.servers.h3;

describe("Caddy's config for HTTP/3", () => {
  it("terminates QUIC and TLS only, with the front door's certificate files chosen by SNI, the first site's by default", () => {
    expect(server.listen).toEqual(["192.0.2.1:8443"]);
    expect(server.protocols).toEqual(["h1", "h2", "h3"]);
    expect(server.automatic_https).toEqual({ disable: true });
    expect(server.tls_connection_policies).toEqual([
      { match: { sni: ["www.example.org", "*.cdn.example.org"] }, certificate_selection: { any_tag: ["www.example.org"] } },
      { match: { sni: ["apt.example.org"] }, certificate_selection: { any_tag: ["apt.example.org"] } },
      { certificate_selection: { any_tag: ["www.example.org"] } },
    ]);
    expect(config.apps.tls.certificates.load_files).toEqual([
      { certificate: "/run/certs/www.pem", key: "/run/certs/www.pem", tags: ["www.example.org"] },
      { certificate: "/run/certs/apt.pem", key: "/run/certs/apt.pem", tags: ["apt.example.org"] },
    ]);
  });

  it("passes every request to HAProxy's h3 socket, streaming, and takes loads only on its own admin socket", () => {
    expect(server.routes).toEqual([
      { handle: [{ handler: "reverse_proxy", upstreams: [{ dial: "unix//run/h3.sock" }], flush_interval: -1, transport: { protocol: "http", dial_timeout: "5s" } }] },
    ]);
    expect(config.admin.listen).toBe("unix//run/caddy.sock");
    expect(config.admin.origins).toEqual([CADDY_ADMIN_HOST]);
  });

  it("refuses to be made without a certificate", () => {
    expect(() => caddyConfig({ plan, listen: ":8443", certificates: [], upstreamSocket: "/s", adminSocket: "/a", dataDir: "/d" })).toThrow(/at least one site's certificate/);
  });
});

describe("Caddy's log lines in the box's output", () => {
  it("keeps warnings and errors, drops info and the expected notices", () => {
    expect(caddyLogLine('{"level":"error","logger":"http.log.error","msg":"dial unix /run/h3.sock: connect: no such file","error":"x"}')).toBe(
      "caddy: error http.log.error: dial unix /run/h3.sock: connect: no such file: x",
    );
    expect(caddyLogLine('{"level":"info","msg":"serving initial configuration"}')).toBeUndefined();
    expect(caddyLogLine('{"level":"warn","logger":"http","msg":"automatic HTTPS is completely disabled for server","server_name":"h3"}')).toBeUndefined();
    expect(caddyLogLine('{"level":"warn","logger":"tls","msg":"stapling OCSP","error":"no OCSP stapling for [a]: no OCSP server specified in certificate"}')).toBeUndefined();
    expect(caddyLogLine('{"level":"warn","logger":"tls","msg":"stapling OCSP","error":"responder unreachable"}')).toBe("caddy: warn tls: stapling OCSP: responder unreachable");
    expect(caddyLogLine("not json")).toBe("caddy: not json");
    expect(caddyLogLine("   ")).toBeUndefined();
  });
});
