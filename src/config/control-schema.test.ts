import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "./config.ts";

function problems(text: string): string[] {
  try {
    parseConfig(text, "bad.toml");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error("expected the config to be refused");
}

describe("[control]", () => {
  it("is optional, and has defaults for everything but the servers", () => {
    expect(parseConfig("").control).toBeUndefined();
    const c = parseConfig('[control]\nservers = ["nats://10.0.0.1:4222", "tls://[2001:db8::1]:4222"]').control!;
    expect(c).toMatchObject({ namespace: "parrot", replicas: 1, retention: 604_800, report_ms: 2000, catch_up_timeout_ms: 30_000 });
  });

  it("names the field and the reason for each problem", () => {
    expect(problems("[control]")).toEqual(["control.servers: Invalid input: expected array, received undefined"]);
    expect(problems("[control]\nservers = []")).toEqual(["control.servers: list at least one server"]);
    expect(problems('[control]\nservers = ["http://x:4222"]')[0]).toMatch(/^control\.servers\[0\]: must be nats:\/\/host:port or tls:\/\/host:port/);
    expect(problems('[control]\nservers = ["nats://u:p@x:4222"]')[0]).toMatch(/^control\.servers\[0\]: .*credentials go in/);
    expect(problems('[control]\nservers = ["nats://x"]\nreplica = 3')[0]).toMatch(/^control: Unrecognized key: "replica"/);
    expect(problems('[control]\nservers = ["nats://x"]\nreplicas = 7')[0]).toMatch(/^control\.replicas: /);
    expect(problems('[control]\nservers = ["nats://x"]\nnamespace = "Parrot.CDN"')[0]).toMatch(/^control\.namespace: lower-case/);
  });

  it("takes one kind of credentials, and TLS client certificates with their keys", () => {
    expect(problems('[control]\nservers = ["nats://x"]\nuser = "u"')).toEqual(["control.password: user and password go together"]);
    expect(problems('[control]\nservers = ["nats://x"]\nuser = "u"\npassword = "p"\ntoken = "t"')).toEqual([
      "control.token: choose one kind of credentials: user + password, token, creds or nkey",
    ]);
    expect(problems('[control]\nservers = ["tls://x:4222"]\ntls_cert = "c.pem"')).toEqual(["control.tls_key: tls_cert and tls_key go together"]);
    expect(parseConfig('[control]\nservers = ["nats://x"]\ncreds = "/etc/parrot/edge.creds"').control!.creds).toBe("/etc/parrot/edge.creds");
  });
});

describe("[edge] invalidate_on_unsafe", () => {
  it("is on by default (RFC 9111 §4.4) and can be turned off", () => {
    expect(parseConfig('[edge]\norigin = "http://o"').edge!.invalidate_on_unsafe).toBe(true);
    expect(parseConfig('[edge]\norigin = "http://o"\ninvalidate_on_unsafe = false').edge!.invalidate_on_unsafe).toBe(false);
  });
});
