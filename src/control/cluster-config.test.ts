import { describe, expect, it } from "vitest";
import { ControlSchema } from "../config/control-schema.ts";
import { clusterServerConfig } from "./cluster-config.ts";

const control = (extra: Record<string, unknown> = {}) =>
  ControlSchema.parse({ servers: ["tls://nats-1.example.org:4222", "tls://nats-2.example.org:4222", "tls://nats-3.example.org:4222"], token: "t0ken-for-the-boxes", ...extra });
const tls = { cert: "/etc/nats/server.crt", key: "/etc/nats/server.key", ca: "/etc/nats/ca.crt" };

describe("clusterServerConfig", () => {
  it("writes the chosen server's listeners, the clients' token, every route and TLS (routes verified by the CA)", () => {
    const text = clusterServerConfig(control(), { server: "nats-2.example.org", dir: "/var/lib/nats", cluster: "parrot", tls });
    expect(text).toContain('server_name: "nats-2.example.org"\nlisten: "0.0.0.0:4222"\nhttp: "0.0.0.0:8222"');
    expect(text).toContain('authorization {\n  token: "t0ken-for-the-boxes"\n}');
    expect(text).toContain('tls {\n  cert_file: "/etc/nats/server.crt"\n  key_file: "/etc/nats/server.key"\n  ca_file: "/etc/nats/ca.crt"\n}');
    expect(text).toContain(
      'cluster {\n  name: "parrot"\n  listen: "0.0.0.0:6222"\n  routes: ["nats-route://nats-1.example.org:6222", "nats-route://nats-2.example.org:6222", "nats-route://nats-3.example.org:6222"]\n' +
        '  tls {\n    cert_file: "/etc/nats/server.crt"\n    key_file: "/etc/nats/server.key"\n    ca_file: "/etc/nats/ca.crt"\n    verify: true\n  }\n}',
    );
  });

  it("says what is wrong: an unknown server, tls:// without a certificate, creds, a bad port", () => {
    expect(() => clusterServerConfig(control(), { server: "nats-9.example.org", dir: "/d", cluster: "c", tls })).toThrow(/^--server nats-9\.example\.org: not one of \[control\] servers/);
    expect(() => clusterServerConfig(control(), { server: "nats-1.example.org", dir: "/d", cluster: "c" })).toThrow(/servers are tls:\/\/: give the server's certificate/);
    expect(() => clusterServerConfig(control({ token: undefined, creds: "edge.creds" }), { server: "nats-1.example.org", dir: "/d", cluster: "c", tls })).toThrow(/^control\.creds: /);
    expect(() => clusterServerConfig(control(), { server: "nats-1.example.org", dir: "/d", cluster: "c", tls, routePort: 70000 })).toThrow(/^--route-port: must be a port/);
  });
});
