import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { functionCf } from "./cf.ts";
import { functionIdentity, functionToken } from "./identity.ts";
import { functionFor, hostMatches } from "./match.ts";
import { outboundDecision } from "./outbound.ts";
import { cpuMsFromStat, Watchdog } from "./watchdog.ts";

describe("which function runs a request", () => {
  const fns = [
    { id: "api", hosts: ["www.example.org"], path: "/api/" },
    { id: "www", hosts: ["www.example.org", "example.org"], path: "/" },
    { id: "sub", hosts: ["*.example.net"], path: "/" },
  ];
  it("the first entry whose host and path prefix match", () => {
    expect(functionFor(fns, "www.example.org", "/api/x")?.id).toBe("api");
    expect(functionFor(fns, "WWW.example.org.", "/index.html")?.id).toBe("www");
    expect(functionFor(fns, "a.example.net", "/")?.id).toBe("sub");
    expect(functionFor(fns, "example.net", "/")).toBeUndefined();
    expect(functionFor(fns, "other.org", "/api/x")).toBeUndefined();
  });
  it("* matches every host; *.name only names under it", () => {
    expect(hostMatches(["*"], "anything")).toBe(true);
    expect(hostMatches(["*.example.org"], "a.b.example.org")).toBe(true);
    expect(hostMatches(["*.example.org"], "badexample.org")).toBe(false);
  });
});

describe("where a function's fetch() may go", () => {
  const d = (u: string) => outboundDecision(new URL(u), ["www.example.org"], ["api.partner.example", "*.cdn.example"]);
  it("its own hosts through the cache, allowed hosts straight out, the rest refused", () => {
    expect(d("https://www.example.org/x")).toEqual({ to: "engine" });
    expect(d("https://api.partner.example/v1")).toEqual({ to: "internet" });
    expect(d("https://img.cdn.example/a.png")).toEqual({ to: "internet" });
    expect(d("http://127.0.0.1:8787/.well-known/cdn/purge").to).toBe("refused");
    expect(d("http://evil.example/").to).toBe("refused");
  });
});

describe("request.cf", () => {
  it("Cloudflare's names from the GeoIP answer, the edge's name as colo", () => {
    expect(functionCf("eu-lon", { country: "GB", continent: "EU", city: "London", region: "ENG", lat: 51.5, lon: -0.1, asn: 29518, asOrg: "Bredband2 AB" })).toEqual({
      colo: "eu-lon",
      country: "GB",
      continent: "EU",
      city: "London",
      regionCode: "ENG",
      latitude: "51.5",
      longitude: "-0.1",
      asn: 29518,
      asOrganization: "Bredband2 AB",
    });
    expect(functionCf("x", { country: "DE", region: "Bavaria" })).toEqual({ colo: "x", country: "DE", isEUCountry: "1", region: "Bavaria" });
    expect(functionCf("x", undefined)).toEqual({ colo: "x" });
  });
});

describe("the watchdog", () => {
  function rig(budget: number) {
    let cpu = 0;
    let answer: ((ok: boolean) => void) | undefined;
    const kills: string[] = [];
    const dog = new Watchdog(budget, {
      cpuMs: () => cpu,
      probe: () => new Promise((r) => (answer = r)),
      kill: (why) => kills.push(why),
    });
    return { dog, kills, burn: (ms: number) => (cpu += ms), answer: () => answer?.(true) };
  }
  it("kills a process that spends its CPU budget with a probe unanswered", () => {
    const r = rig(100);
    r.dog.tick(); // probe sent at cpu 0
    r.burn(90);
    r.dog.tick();
    expect(r.kills).toEqual([]);
    r.burn(10);
    r.dog.tick();
    expect(r.kills).toHaveLength(1);
    expect(r.kills[0]).toContain("100 ms of CPU");
  });
  it("never kills a process that waits for CPU (no CPU spent) however long the probe takes", () => {
    const r = rig(100);
    r.dog.tick();
    for (let i = 0; i < 1000; i++) r.dog.tick();
    expect(r.kills).toEqual([]);
  });
  it("an answered probe starts the count again", async () => {
    const r = rig(100);
    r.dog.tick();
    r.burn(90);
    r.answer();
    await Promise.resolve();
    await Promise.resolve();
    r.dog.tick(); // a new probe at cpu 90
    r.burn(90);
    r.dog.tick();
    expect(r.kills).toEqual([]);
  });
  it("reads user + system time from /proc/<pid>/stat, a command name with spaces and parentheses included", () => {
    const stat = "4242 (work (er) d) R 1 1 1 0 -1 4194304 119 0 0 0 250 30 0 0 20 0 1 0 2212446 3133440 383";
    expect(cpuMsFromStat(stat)).toBe(2800);
  });
});

describe("[[functions]] in cdn.toml", () => {
  it("names the field and the reason", () => {
    expect(() => parseConfig('[[functions]]\nid = "Bad Id"\nhosts = []\nmodule = "a.js"\non_error = "retry"\n')).toThrow(
      /functions\[0\]\.id: lower-case[\s\S]*functions\[0\]\.hosts: [\s\S]*functions\[0\]\.on_error/,
    );
    expect(() => parseConfig('[[functions]]\nid = "a"\nhosts = ["x.org"]\nmodule = "a.js"\n[[functions]]\nid = "a"\nhosts = ["y.org"]\nmodule = "b.js"\n')).toThrow(
      /functions\[1\]\.id: id "a" is used by another function/,
    );
  });
  it("defaults", () => {
    const [f] = parseConfig('[[functions]]\nid = "www"\nhosts = ["WWW.Example.org"]\nmodule = "w.ts"\n').functions;
    expect(f).toMatchObject({ hosts: ["www.example.org"], path: "/", on_error: "503", cpu_ms: 500, timeout_ms: 30_000, memory_mb: 128, vars: {}, allow_hosts: [] });
  });
});

describe("a function's identity on its fetch() back to the edge", () => {
  it("the edge knows a function by the token the box's key gives it; another function's id or a wrong token is nobody", async () => {
    const identify = functionIdentity("box-key");
    const www = await functionToken("box-key", "www");
    expect(await identify(`www ${www}`)).toBe("www");
    expect(await identify(`api ${www}`)).toBeUndefined();
    expect(await identify(`www ${await functionToken("other-key", "www")}`)).toBeUndefined();
    expect(await identify("www")).toBeUndefined();
    expect(await identify(null)).toBeUndefined();
  });
});
