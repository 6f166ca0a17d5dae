import { describe, expect, it } from "vitest";
import { installed, leaveOutMissingEngines } from "./engines.ts";

describe("leaveOutMissingEngines", () => {
  const site = { names: ["www.geo.example.org"], certificate: "local" };

  it("keeps the front door and anycast when their engines are installed", () => {
    const raw = { sites: [site], anycast: { service: "edge" } };
    expect(leaveOutMissingEngines(raw, () => true)).toEqual([]);
    expect(raw).toEqual({ sites: [site], anycast: { service: "edge" } });
  });

  it("drops the sites without HAProxy or openssl, naming only what is missing", () => {
    const raw: { sites?: unknown[] } = { sites: [site] };
    expect(leaveOutMissingEngines(raw, (c) => c !== "openssl")).toEqual([
      "HTTPS        off, HTTP only: apt-get install openssl for HTTPS and HTTP/2 through each edge's front door",
    ]);
    expect(raw.sites).toBeUndefined();
  });

  it("drops [anycast] when its BIRD binaries are missing, naming them", () => {
    const raw: { anycast?: { bird?: string } } = { anycast: { bird: "/opt/bird/sbin/bird" } };
    expect(leaveOutMissingEngines(raw, (c) => c === "/usr/sbin/birdc")).toEqual([
      "anycast      off: apt-get install bird2 for the [anycast] announcements (/opt/bird/sbin/bird and /usr/sbin/birdc)",
    ]);
    expect(raw.anycast).toBeUndefined();
  });

  it("says nothing about parts the config does not have", () => {
    expect(leaveOutMissingEngines({}, () => false)).toEqual([]);
  });
});

describe("installed", () => {
  it("finds executables on the given PATH only", () => {
    expect(installed("sh", "/bin:/usr/bin")).toBe(true);
    expect(installed("sh", "/nonexistent")).toBe(false);
    expect(installed("/bin/sh")).toBe(true);
    expect(installed("/etc/passwd")).toBe(false);
    expect(installed("tmp", "/")).toBe(false); // a folder
  });
});

describe("leaveOutMissingEngines and HTTP/3", () => {
  const site = { names: ["www.geo.example.org"], certificate: "local" };
  it("turns HTTP/3 off with one line when Caddy is missing, keeping HTTPS", () => {
    const raw: { sites: unknown[]; frontdoor?: Record<string, unknown> } = { sites: [site], frontdoor: { cert_dir: "/x" } };
    expect(leaveOutMissingEngines(raw, (c) => c !== "caddy")).toEqual(["HTTP/3       off: apt-get install caddy for HTTP/3 (QUIC) beside each edge's front door"]);
    expect(raw.frontdoor).toEqual({ cert_dir: "/x", http3: false });
    expect(raw.sites).toEqual([site]);
  });
  it("says nothing when the file already turned HTTP/3 off, or when Caddy is there", () => {
    expect(leaveOutMissingEngines({ sites: [site], frontdoor: { http3: false } }, (c) => c !== "caddy")).toEqual([]);
    expect(leaveOutMissingEngines({ sites: [site] }, () => true)).toEqual([]);
  });
});
