import { describe, expect, it } from "vitest";
// @ts-expect-error: the package ships no types
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { Registry } from "./registry.ts";

describe("metrics registry", () => {
  it("exposes counters, gauges and histograms a Prometheus parser reads back", () => {
    const r = new Registry();
    r.inc("requests_total", "Requests.", { cache_status: "HIT", class: "2xx" });
    r.inc("requests_total", "Requests.", { cache_status: "HIT", class: "2xx" }, 2);
    r.inc("requests_total", "Requests.", { cache_status: "MISS", class: "5xx" });
    r.set("hit_ratio", "Hits over requests.", {}, 0.75);
    r.observe("origin_seconds", "Origin time.", [0.1, 1], { origin: 'a"b\\c' }, 0.05);
    r.observe("origin_seconds", "Origin time.", [0.1, 1], { origin: 'a"b\\c' }, 5);
    const parsed = parsePrometheusTextFormat(r.expose()) as Array<{ name: string; type: string; metrics: Array<Record<string, unknown>> }>;
    const byName = Object.fromEntries(parsed.map((f) => [f.name, f]));
    expect(byName.requests_total!.type).toBe("COUNTER");
    expect(byName.requests_total!.metrics).toContainEqual({ labels: { cache_status: "HIT", class: "2xx" }, value: "3" });
    expect(byName.hit_ratio!.metrics[0]!.value).toBe("0.75");
    expect(byName.origin_seconds!.type).toBe("HISTOGRAM");
    expect(byName.origin_seconds!.metrics[0]!.buckets).toEqual({ "0.1": "1", "1": "1", "+Inf": "2" });
    expect(r.expose()).toContain('origin_seconds_sum{origin="a\\"b\\\\c"} 5.05');
    expect(r.expose()).toContain('origin_seconds_count{origin="a\\"b\\\\c"} 2');
    expect(r.sum("requests_total", { cache_status: "HIT" })).toBe(3);
  });
});
