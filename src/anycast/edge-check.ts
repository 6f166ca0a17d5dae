/**
 * The health check of an edge box's own service (Node host): its health endpoint, judged exactly as the DNS nodes
 * judge it (src/health/monitor.ts: 200 "ok …" is good, "draining …" is draining, anything else fails), over
 * loopback, TLS certificates not checked (it is us).
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { ProbeResult } from "../health/health.ts";
import { HealthMonitor } from "../health/monitor.ts";

/** fetch for this box's own listeners: http or https without certificate checks (a loopback call to ourselves). */
export function loopbackFetch(input: string, init: RequestInit = {}): Promise<Response> {
  const url = new URL(input);
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: init.method ?? "GET",
        headers: Object.fromEntries(new Headers(init.headers).entries()),
        signal: init.signal ?? undefined,
        rejectUnauthorized: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size <= 1 << 16) chunks.push(c); // a health answer is a line; more is not read into memory
        });
        res.on("end", () => {
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") headers.set(k, v);
          resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 502, headers }));
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(typeof init.body === "string" ? init.body : undefined);
  });
}

/**
 * Checks an edge's health endpoint at `baseUrl` once per call. The DNS nodes' prober (HealthMonitor) does the
 * request and the judging, with thresholds of 1 so that each call's outcome is that check alone; the hysteresis is
 * the announcer's.
 */
export function edgeHealthCheck(baseUrl: string, timeoutMs: number): () => Promise<ProbeResult> {
  const monitor = new HealthMonitor([{ name: "self", url: baseUrl }], { intervalMs: timeoutMs, timeoutMs, downAfter: 1, upAfter: 1, minUp: 1 }, loopbackFetch);
  return async () => {
    await monitor.probeAll();
    const last = monitor.health("self")?.lastProbe;
    if (!last) return { kind: "failed", detail: "no check ran" };
    if (last.ok) return { kind: "ok" };
    return last.detail === "draining" ? { kind: "draining" } : { kind: "failed", detail: last.detail };
  };
}
