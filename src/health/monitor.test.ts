import { describe, expect, it } from "vitest";
import { HealthMonitor } from "./monitor.ts";

describe("health monitor", () => {
  it("probes each edge's health endpoint and applies the answers", async () => {
    const answers: Record<string, () => Response | Promise<Response>> = {
      "http://a/.well-known/cdn/health": () => new Response("ok a\n", { headers: { "cdn-anycast": "announced" } }),
      "http://b/.well-known/cdn/health": () => new Response("draining b\n", { status: 503, headers: { "cdn-control": "cut-off" } }),
      "http://c/.well-known/cdn/health": () => Promise.reject(new TypeError("connection refused")),
      "http://d/.well-known/cdn/health": () => new Promise<Response>(() => {}),
    };
    const m = new HealthMonitor(
      [{ name: "a", url: "http://a" }, { name: "b", url: "http://b" }, { name: "c", url: "http://c" }, { name: "d", url: "http://d/" }, { name: "e" }],
      { intervalMs: 1000, timeoutMs: 20, downAfter: 2, upAfter: 2, minUp: 1 },
      async (url) => answers[url]!(),
    );
    await m.probeAll();
    const states = Object.fromEntries(m.snapshot().map((s) => [s.name, s.state]));
    expect(states).toEqual({ a: "up", b: "draining", c: "down", d: "down", e: "unknown" });
    expect(m.snapshot().find((s) => s.name === "d")!.lastProbe!.detail).toBe("timed out");
    expect(m.snapshot().map((s) => s.anycast)).toEqual(["announced", undefined, undefined, undefined, undefined]);
    // An edge box that cannot hear the control plane says so (cdn-control): shown on the status page.
    expect(m.snapshot().map((s) => s.control)).toEqual([undefined, "cut-off", undefined, undefined, undefined]);
    const edges = ["a", "b", "c", "d", "e"].map((name) => ({ name }));
    expect(m.answerable(edges).edges.map((e) => e.name)).toEqual(["a", "e"]);
    m.setDrained("a", true);
    expect(m.answerable(edges).edges.map((e) => e.name)).toEqual(["e"]);
  });

  it("runs at most one round per interval when asked from request handling", async () => {
    let now = 0;
    let probes = 0;
    const m = new HealthMonitor([{ name: "a", url: "http://a" }], { intervalMs: 1000, timeoutMs: 50, downAfter: 1, upAfter: 1, minUp: 1 }, async () => {
      probes++;
      return new Response("ok");
    }, () => now);
    await Promise.all([m.maybeProbe(), m.maybeProbe()]);
    await m.maybeProbe();
    expect(probes).toBe(1);
    now = 1000;
    await m.maybeProbe();
    expect(probes).toBe(2);
  });
});

describe("health monitor versions and sharing", () => {
  it("bumps its version on every change of state or drain, not on probes that change nothing", async () => {
    let ok = true;
    const m = new HealthMonitor([{ name: "a", url: "http://a" }], { intervalMs: 1000, timeoutMs: 50, downAfter: 1, upAfter: 1, minUp: 1 }, async () =>
      ok ? new Response("ok") : Promise.reject(new TypeError("refused")),
    );
    let changes = 0;
    m.onChange(() => changes++);
    await m.probeAll();
    const v = m.version;
    await m.probeAll();
    expect([m.version, changes]).toEqual([v, 1]);
    ok = false;
    await m.probeAll();
    expect(m.version).toBe(v + 1);
    m.setDrained("a", true);
    expect(m.version).toBe(v + 2);
    const copy = new HealthMonitor([{ name: "a", url: "http://a" }], m.settings, async () => new Response("ok"));
    copy.replace(m.snapshot());
    expect(copy.health("a")).toMatchObject({ state: "down", drained: true });
  });

  it("starts by probing and then probes on a fixed cadence", async () => {
    let probes = 0;
    const m = new HealthMonitor([{ name: "a", url: "http://a" }], { intervalMs: 20, timeoutMs: 10, downAfter: 1, upAfter: 1, minUp: 1 }, async () => {
      probes++;
      return new Response("ok");
    });
    const stop = m.start();
    expect(probes).toBe(1);
    for (let i = 0; i < 100 && probes < 3; i++) await new Promise((r) => setTimeout(r, 10));
    stop();
    expect(probes).toBeGreaterThanOrEqual(3);
  });

  it("counts a passed probe as failed while the heartbeats say the box is gone (same hysteresis), a failed one always", async () => {
    let silent: string | undefined;
    let ok = true;
    const m = new HealthMonitor([{ name: "a", url: "http://a" }], { intervalMs: 1000, timeoutMs: 50, downAfter: 2, upAfter: 1, minUp: 1 }, async () =>
      ok ? new Response("ok a") : Promise.reject(new TypeError("connection refused")),
    );
    m.heartbeats = () => silent;
    await m.probeAll();
    expect(m.health("a")!.state).toBe("up");
    silent = "no heartbeat for 2.0 s (control plane)";
    await m.probeAll();
    expect(m.health("a")).toMatchObject({ state: "up", lastProbe: { ok: false, detail: "no heartbeat for 2.0 s (control plane)" } });
    await m.probeAll();
    expect(m.health("a")!.state).toBe("down");
    silent = undefined;
    await m.probeAll();
    expect(m.health("a")!.state).toBe("up");
    ok = false;
    await m.probeAll();
    await m.probeAll();
    expect(m.health("a")).toMatchObject({ state: "down", lastProbe: { detail: "connection refused" } });
  });
});
