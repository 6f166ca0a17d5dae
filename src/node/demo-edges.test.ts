import { describe, expect, it } from "vitest";
import { dnsHost, placeLocalEdges } from "./demo-edges.ts";

const edges = () => [
  { name: "eu-lon", url: "http://127.0.0.2:8787", ipv4: "127.0.0.2", ipv6: "2001:db8:21::1" },
  { name: "na-sfo", url: "http://127.0.0.3:8787", ipv4: "127.0.0.3", ipv6: "2001:db8:22::1" },
  { name: "far", url: "http://203.0.113.7:8787", ipv4: "203.0.113.7" },
  { name: "no-url", ipv4: "198.51.100.1" },
];
const interfaces = ["127.0.0.1", "::1", "192.0.2.2", "fd00::2"];

describe("placeLocalEdges", () => {
  it("runs the entries whose url is on this machine, on --port", () => {
    const e = edges();
    expect(placeLocalEdges(e, { port: "9000", interfaces })).toEqual([
      { name: "eu-lon", host: "127.0.0.2", url: "http://127.0.0.2:9000" },
      { name: "na-sfo", host: "127.0.0.3", url: "http://127.0.0.3:9000" },
    ]);
    expect(e[2]!.url).toBe("http://203.0.113.7:8787");
  });

  it("moves them to --edge-hosts in order, and the director answers the new addresses", () => {
    const e = edges();
    expect(placeLocalEdges(e, { port: "80", edgeHosts: "192.0.2.2,fd00::2", interfaces }).map((x) => x.url)).toEqual(["http://192.0.2.2", "http://[fd00::2]"]);
    expect(e[0]).toMatchObject({ ipv4: "192.0.2.2", ipv6: "2001:db8:21::1" });
    expect(e[1]).toMatchObject({ ipv6: "fd00::2" });
    expect(e[1]!.ipv4).toBeUndefined();
  });

  it("names the flag and the reason for a bad address list", () => {
    expect(() => placeLocalEdges(edges(), { port: "80", edgeHosts: "198.51.100.7", interfaces })).toThrow(
      "--edge-hosts: 198.51.100.7 is not an address of this machine (it has 127.0.0.0/8, ::1, 192.0.2.2, fd00::2)",
    );
    expect(() => placeLocalEdges(edges(), { port: "80", edgeHosts: "edge.example", interfaces })).toThrow('--edge-hosts: "edge.example" is not an IP address');
    expect(() => placeLocalEdges(edges(), { port: "80", edgeHosts: "127.0.0.5,127.0.0.6,127.0.0.7", interfaces })).toThrow("--edge-hosts: 3 addresses for 2 [[edges]]");
    expect(() => placeLocalEdges(edges(), { port: "80", edgeHosts: "127.0.0.3", interfaces })).toThrow("--edge-hosts: two edges on 127.0.0.3");
  });
});

describe("dnsHost", () => {
  it("takes an address of this machine or every address, and refuses others", () => {
    expect(dnsHost("127.0.0.8", interfaces)).toBe("127.0.0.8");
    expect(dnsHost("0.0.0.0", interfaces)).toBe("0.0.0.0");
    expect(dnsHost("[::1]", interfaces)).toBe("::1");
    expect(() => dnsHost("198.51.100.7", interfaces)).toThrow(/^--dns-host: 198\.51\.100\.7 is not an address of this machine/);
  });
});
