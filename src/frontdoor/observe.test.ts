// @ts-expect-error: the package ships no types
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { describe, expect, it } from "vitest";
import { parseStat, parseTable } from "./haproxy-runtime.ts";
import { FrontDoorObserver, parseTerminatorLog } from "./observe.ts";
import { ClientAddresses } from "../privacy/client-addresses.ts";
import { parseConfig } from "../config/config.ts";

describe("the terminator's output", () => {
  it("parses its JSON log lines of limited and banned requests", () => {
    expect(
      parseTerminatorLog('{"client":"127.0.0.10","host":"www.example.org","path":"\\/api\\/x","status":429,"action":"limited","limit":"api","ban":"-"}'),
    ).toEqual({ client: "127.0.0.10", host: "www.example.org", path: "/api/x", status: 429, action: "limited", limit: "api", ban: false });
    expect(parseTerminatorLog('{"client":"::1","host":"-","path":"\\/","status":-1,"action":"banned","limit":"-","ban":"1"}')).toMatchObject({
      action: "banned",
      limit: undefined,
      ban: true,
    });
    expect(parseTerminatorLog('{"client":"127.0.0.20","host":"a.example","path":"\\/","status":-1,"action":"flooding","limit":"-","ban":"-"}')).toMatchObject({
      action: "flooding",
      client: "127.0.0.20",
    });
    expect(parseTerminatorLog("[NOTICE]   (1) : Loading success.")).toBeUndefined();
    expect(parseTerminatorLog('{"action":"ok"}')).toBeUndefined();
    expect(parseTerminatorLog("{broken")).toBeUndefined();
  });

  it("parses show stat and show table", () => {
    const stat = parseStat("# pxname,svname,scur,stot,dreq,dcon,\npublic,FRONTEND,3,120,7,2,\nedge,BACKEND,1,50,0,,\n");
    expect(stat[0]).toMatchObject({ pxname: "public", svname: "FRONTEND", scur: "3", stot: "120", dreq: "7", dcon: "2" });
    const table = parseTable(
      "# table: st_strike, type: ipv6, size:1048576, used:2\n0x55d1: key=::ffff:127.0.0.10 use=0 exp=59000 gpc0=6 gpc0_rate(60000)=6 gpt0=1796120000\n0x55d2: key=2001:db8::1 use=1 exp=100 gpc0=0 gpc0_rate(60000)=0 gpt0=0\n",
    );
    expect(table).toEqual([
      { key: "127.0.0.10", expiresMs: 59000, data: { gpc0: 6, "gpc0_rate(60000)": 6, gpt0: 1796120000 } },
      { key: "2001:db8::1", expiresMs: 100, data: { gpc0: 0, "gpc0_rate(60000)": 0, gpt0: 0 } },
    ]);
  });
});

describe("the front door's metrics and logs", () => {
  it("counts limited requests, bans and certificates, and logs each as a JSON line", () => {
    const out: string[] = [];
    let now = Date.UTC(2026, 0, 1);
    const o = new FrontDoorObserver("eu-lon", new ClientAddresses(parseConfig("").privacy), (l) => out.push(l), () => now);
    o.terminatorLine('{"client":"127.0.0.10","host":"a.example","path":"\\/","status":429,"action":"limited","limit":"a","ban":"-"}');
    o.terminatorLine('{"client":"127.0.0.10","host":"a.example","path":"\\/","status":429,"action":"limited","limit":"a","ban":"1"}');
    o.terminatorLine("[WARNING]  (9) : Proxy public stopped");
    o.terminatorLine('{"client":"127.0.0.20","host":"a.example","path":"\\/","status":-1,"action":"flooding","limit":"-","ban":"-"}');
    o.certificateInstalled("a.example", "acme", { serial: "ab", notBefore: 0, notAfter: Date.UTC(2026, 3, 1), names: ["a.example"], issuer: "x", fingerprint256: "f" }, "due");
    o.acmeFailed("a.example", "due", "DNS node down", now + 300_000);
    const start = Math.floor(now / 1000) - 10;
    o.bans([{ key: "127.0.0.10", expiresMs: 1, data: { gpc0: 6, gpt0: start } }, { key: "127.0.0.11", expiresMs: 1, data: { gpc0: 1, gpt0: 0 } }], 600);
    o.bans([{ key: "127.0.0.10", expiresMs: 1, data: { gpc0: 7, gpt0: start } }], 600); // the same ban: not counted again
    o.terminatorStats([{ pxname: "public", svname: "FRONTEND", scur: "4", stot: "100", req_tot: "300", dreq: "2", dcon: "5", dses: "1" }]);
    o.terminatorStats([{ pxname: "public", svname: "FRONTEND", scur: "1", stot: "10", req_tot: "20", dreq: "0", dcon: "1", dses: "0" }]); // reloaded: from 0

    const families = Object.fromEntries(
      (parsePrometheusTextFormat(o.metrics.expose()) as { name: string; metrics: { value: string; labels?: Record<string, string> }[] }[]).map((f) => [f.name, f.metrics]),
    );
    expect(families.parrot_frontdoor_limited_requests_total).toEqual([{ labels: { limit: "a" }, value: "2" }]);
    expect(families.parrot_frontdoor_cert_expiry_seconds).toEqual([{ labels: { site: "a.example" }, value: String(Date.UTC(2026, 3, 1) / 1000) }]);
    expect(families.parrot_frontdoor_acme_failures_total).toEqual([{ labels: { site: "a.example" }, value: "1" }]);
    expect(families.parrot_frontdoor_bans_total![0]!.value).toBe("1");
    expect(families.parrot_frontdoor_banned_clients![0]!.value).toBe("1");
    expect(families.parrot_frontdoor_rejected_connections_total![0]!.value).toBe("7"); // 6, then 1 more after the restart
    expect(families.parrot_frontdoor_requests_total![0]!.value).toBe("320");
    expect(families.parrot_frontdoor_connections![0]!.value).toBe("1");

    const events = out.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(families.parrot_frontdoor_flooding_connections_total![0]!.value).toBe("1");
    expect(events.map((e) => e.event)).toEqual(["limited", "limited", "flooding", "certificate", "acme-failed", "ban"]);
    expect(events[1]).toMatchObject({ time: "2026-01-01T00:00:00.000Z", edge: "eu-lon", source: "frontdoor", client: "127.0.0.0/24", status: 429, ban_started: true });
    expect(events[4]).toMatchObject({ site: "a.example", error: "DNS node down", retry_at: "2026-01-01T00:05:00.000Z" });
    expect(events[5]).toMatchObject({ client: "127.0.0.0/24", until: new Date((start + 600) * 1000).toISOString() });
    expect(out).toContain("haproxy: [WARNING]  (9) : Proxy public stopped");
    now += 600_000; // the ban is over
    o.bans([{ key: "127.0.0.10", expiresMs: 1, data: { gpc0: 7, gpt0: start } }], 600);
    expect(o.metrics.value("parrot_frontdoor_banned_clients")).toBe(0);
  });
});
