/**
 * A small metrics registry with Prometheus text exposition (format 0.0.4): counters, gauges and histograms with
 * labels. prom-client needs Node's cluster and perf_hooks, which workerd lacks; this is all the edge and the DNS node
 * need, and test/unit checks its output with a Prometheus text-format parser.
 */

type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  series: Map<string, { labels: Labels; value: number; buckets?: number[]; sum?: number; count?: number }>;
  bounds?: number[];
}

/** Series identity: label values in the order given (call sites always pass one family's labels in one order). */
const labelKey = (labels: Labels) => {
  let key = "";
  for (const k in labels) key += `${k}=${labels[k]}\u0000`;
  return key;
};

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
const renderLabels = (labels: Labels, extra?: [string, string]) => {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
};
const num = (n: number) => (Number.isFinite(n) ? String(n) : n > 0 ? "+Inf" : n < 0 ? "-Inf" : "NaN");

export class Registry {
  private readonly families = new Map<string, Family>();
  private readonly collectors: (() => void)[] = [];

  private family(name: string, help: string, type: Family["type"], bounds?: number[]): Family {
    let f = this.families.get(name);
    if (!f) {
      f = { name, help, type, series: new Map(), bounds };
      this.families.set(name, f);
    }
    return f;
  }

  /** Adds `by` (default 1) to a counter. */
  inc(name: string, help: string, labels: Labels = {}, by = 1) {
    const f = this.family(name, help, "counter");
    const key = labelKey(labels);
    const s = f.series.get(key) ?? { labels, value: 0 };
    s.value += by;
    f.series.set(key, s);
  }

  /** Sets a gauge. */
  set(name: string, help: string, labels: Labels, value: number) {
    const f = this.family(name, help, "gauge");
    f.series.set(labelKey(labels), { labels, value });
  }

  /** Records an observation in a histogram with the given upper bounds. */
  observe(name: string, help: string, bounds: number[], labels: Labels, value: number) {
    const f = this.family(name, help, "histogram", bounds);
    const key = labelKey(labels);
    const s = f.series.get(key) ?? { labels, value: 0, buckets: bounds.map(() => 0), sum: 0, count: 0 };
    bounds.forEach((b, i) => {
      if (value <= b) s.buckets![i]! += 1;
    });
    s.sum! += value;
    s.count! += 1;
    f.series.set(key, s);
  }

  /** The current value of a counter or gauge series (0 when absent). */
  value(name: string, labels: Labels = {}): number {
    return this.families.get(name)?.series.get(labelKey(labels))?.value ?? 0;
  }

  /** Sum over every series of a family whose labels include `match`. */
  sum(name: string, match: Labels = {}): number {
    let total = 0;
    for (const s of this.families.get(name)?.series.values() ?? []) {
      if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) total += s.value;
    }
    return total;
  }

  /** Runs before each exposition, to set gauges computed on demand. */
  onCollect(fn: () => void) {
    this.collectors.push(fn);
  }

  /** The registry in Prometheus text format. */
  expose(): string {
    for (const c of this.collectors) c();
    const lines: string[] = [];
    for (const f of this.families.values()) {
      lines.push(`# HELP ${f.name} ${f.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${f.name} ${f.type}`);
      for (const s of f.series.values()) {
        if (f.type !== "histogram") {
          lines.push(`${f.name}${renderLabels(s.labels)} ${num(s.value)}`);
          continue;
        }
        f.bounds!.forEach((b, i) => lines.push(`${f.name}_bucket${renderLabels(s.labels, ["le", num(b)])} ${s.buckets![i]}`));
        lines.push(`${f.name}_bucket${renderLabels(s.labels, ["le", "+Inf"])} ${s.count}`);
        lines.push(`${f.name}_sum${renderLabels(s.labels)} ${num(s.sum!)}`, `${f.name}_count${renderLabels(s.labels)} ${s.count}`);
      }
    }
    return lines.join("\n") + "\n";
  }
}

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
