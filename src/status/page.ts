/**
 * The DNS node's status page: every edge with its health, place (on a small self-drawn map), the DNS answers that
 * named it, its cache hit ratio and its tier role, then the tiered cache's shields with their health at each edge.
 * One HTML document, no scripts or assets from anywhere else.
 */
import type { ShieldStatus, TierRole } from "./tiers.ts";
import type { MirrorsStatus } from "../contracts/mirrors-status.ts";

export interface EdgeStatus {
  name: string;
  url?: string;
  lat: number;
  lon: number;
  state: string;
  since: number;
  detail?: string;
  drained: boolean;
  /** The edge box's anycast announcement ("announced", "withdrawn"; "-" when its health answer does not say). */
  anycast?: string;
  /** The edge box on the control plane ("current", "lagging", "cut-off", "no-agent"; "-" when its health answer does not say). */
  control?: string;
  /** The box's last heartbeat on the control plane: health (ok, draining), anycast, age ("-" without one). */
  heartbeat?: string;
  /** Whether the director may name it now (fail-open included); undefined: not known. */
  inAnswers?: boolean;
  /** Its IPv4 (else IPv6) address in DNS answers. */
  ipv4?: string;
  ipv6?: string;
  /** DNS answers that named this edge since the node started. */
  answers: number;
  /** From the edge's own metrics; undefined when they could not be read. */
  hitRatio?: number;
  requests?: number;
  /** Tiered cache: faces clients only ("edge"), or is also some edge's shield ("both"); undefined: not known. */
  tier?: TierRole;
}

export interface StatusData {
  zone: string;
  node: string;
  generatedAt: number;
  failOpen: boolean;
  /** The director answers its fallback (anycast) addresses for at least one family. */
  fallback?: boolean;
  queries: number;
  edges: EdgeStatus[];
  /** Tiered cache: every shield the edges name (tiers.ts); none without shields. */
  shields?: ShieldStatus[];
  /** The mirror redirector's status ([redirector] public_url), or why it could not be read; none without one. */
  mirrors?: MirrorsStatus | { error: string };
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const COLORS: Record<string, string> = { up: "#1a7f37", unknown: "#9a6700", draining: "#0969da", down: "#cf222e" };

/** Very coarse continent outlines ([lon, lat] pairs), drawn by hand for orientation only. */
const LAND: number[][] = [
  // North America, Greenland, South America
  [-168, 65, -140, 70, -95, 72, -80, 63, -60, 55, -52, 47, -70, 43, -76, 35, -81, 25, -97, 26, -97, 16, -83, 9, -78, 8, -92, 14, -105, 20, -117, 32, -124, 40, -125, 49, -135, 58, -150, 60, -165, 55],
  [-50, 60, -20, 70, -20, 80, -60, 82, -70, 77, -55, 68],
  [-78, 8, -60, 10, -50, 0, -35, -7, -40, -22, -53, -34, -65, -42, -68, -55, -75, -50, -72, -30, -70, -18, -81, -5, -80, 2],
  // Eurasia, Britain, Africa, Australia
  [-10, 36, -9, 43, -1, 46, -5, 48, 5, 54, 8, 57, 5, 62, 15, 69, 30, 71, 60, 70, 80, 73, 110, 77, 140, 72, 180, 68, 180, 64, 160, 60, 156, 51, 140, 47, 130, 42, 127, 35, 122, 30, 120, 22, 108, 21, 105, 10, 100, 13, 98, 8, 92, 21, 80, 15, 77, 8, 72, 20, 66, 25, 57, 25, 52, 27, 48, 30, 55, 17, 43, 13, 35, 28, 32, 31, 36, 36, 27, 37, 24, 40, 20, 39, 15, 38, 12, 44, 3, 43, -5, 36],
  [-5, 50, 1, 51, 2, 53, -2, 57, -5, 58, -6, 56, -3, 54, -5, 52],
  [-17, 15, -17, 21, -10, 30, -5, 36, 10, 37, 20, 32, 32, 31, 35, 28, 43, 12, 51, 11, 40, -3, 40, -15, 35, -25, 27, -34, 18, -34, 12, -17, 9, -1, 9, 4, -8, 4, -15, 10],
  [114, -22, 122, -18, 130, -12, 137, -12, 142, -11, 146, -19, 153, -26, 150, -37, 140, -38, 131, -31, 115, -34],
];

/** An equirectangular map 720×360: coarse land, graticule every 30°, one labelled dot per edge. */
function map(edges: EdgeStatus[]): string {
  const x = (lon: number) => ((lon + 180) * 2).toFixed(1);
  const y = (lat: number) => ((90 - lat) * 2).toFixed(1);
  const land = LAND.map((p) => {
    const pts: string[] = [];
    for (let i = 0; i < p.length; i += 2) pts.push(`${x(p[i]!)},${y(p[i + 1]!)}`);
    return `<polygon points="${pts.join(" ")}"/>`;
  });
  const grid: string[] = [];
  for (let lon = -180; lon <= 180; lon += 30) grid.push(`<line x1="${x(lon)}" y1="0" x2="${x(lon)}" y2="360"/>`);
  for (let lat = -90; lat <= 90; lat += 30) grid.push(`<line x1="0" y1="${y(lat)}" x2="720" y2="${y(lat)}"/>`);
  const dots = edges.map(
    (e) =>
      `<g><circle cx="${x(e.lon)}" cy="${y(e.lat)}" r="7" fill="${COLORS[e.state] ?? "#57606a"}"><title>${esc(e.name)}: ${esc(e.state)}</title></circle>` +
      `<text x="${Number(x(e.lon)) + 10}" y="${Number(y(e.lat)) + 4}">${esc(e.name)}</text></g>`,
  );
  return `<svg viewBox="0 0 720 360" role="img" aria-label="edge locations"><rect width="720" height="360" fill="#eef4fb"/><g fill="#dde8d5" stroke="#b9cbb0" stroke-width="1">${land.join("")}</g><g stroke="#c8d6e5" stroke-width="1" opacity="0.6">${grid.join("")}</g>${dots.join("")}</svg>`;
}

const pct = (r?: number) => (r === undefined ? "–" : `${(r * 100).toFixed(1)} %`);
const ago = (since: number, now: number) => {
  const s = Math.max(0, Math.round((now - since) / 1000));
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
};

/** The tiered cache's shields: name, URL, role, and each edge's passive health of it. */
function shieldTable(shields: ShieldStatus[]): string {
  if (!shields.length) return "";
  const rows = shields.map((s) => {
    const skipped = s.skippedBy.map((b) => `skipped by ${esc(b.edge)} until ${new Date(b.until).toISOString()}`);
    const up = s.upAt.length ? [`up at ${s.upAt.map(esc).join(", ")}`] : [];
    const down = s.downAt?.length ? [`down by the probes of ${s.downAt.map(esc).join(", ")}`] : [];
    const skips = s.skippedBy.length + (s.downAt?.length ?? 0);
    const state = skips ? (s.upAt.length ? "partly skipped" : "skipped") : s.upAt.length ? "up" : "unknown";
    return `<tr data-shield="${esc(s.name)}" data-state="${state}">
  <td>${esc(s.name)}</td>
  <td>${s.urls.map(esc).join(", ")}</td>
  <td class="role">${s.role}</td>
  <td class="health${skips ? " warn" : ""}">${[...down, ...skipped, ...up].join("; ") || "–"}</td>
</tr>`;
  });
  return `<h2>Tiered cache</h2>
<table><thead><tr><th>shield</th><th>url</th><th>role</th><th>health at the edges</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody></table>`;
}

/** The mirror redirector's mirrors: health, and how many of the files each carries its checks found up to date. */
function mirrorTable(m: MirrorsStatus | { error: string } | undefined, now: number): string {
  if (!m) return "";
  if ("error" in m) return `<h2>Mirrors</h2>\n<p class="warn">${esc(m.error)}</p>`;
  const rows = m.mirrors.map((x) => {
    const state = !x.enabled ? "disabled" : x.maintenance ? "maintenance" : x.up ? "up" : "down";
    const health = state === "down" ? `down: ${x.failures} failures${x.error ? ` (${esc(x.error)})` : ""}` : state;
    const fresh = `${x.present} of ${x.carried} up to date` + (x.absent ? `, ${x.absent} missing` : "") + (x.wrong ? `, ${x.wrong} wrong` : "") + (x.unknown ? `, ${x.unknown} unchecked` : "");
    const scanned = x.lastScan ? `${ago(Date.parse(x.lastScan), now)} ago` : "never";
    return `<tr data-mirror="${esc(x.name)}" data-state="${state}">
  <td><span class="dot" style="background:${COLORS[state === "up" ? "up" : state === "down" ? "down" : "unknown"]}"></span>${esc(x.name)}</td>
  <td>${esc(x.url)}</td>
  <td>${esc(x.country ?? "")}</td>
  <td class="health${state === "down" ? " warn" : ""}">${health}</td>
  <td class="fresh${x.wrong || x.absent ? " warn" : ""}">${fresh}</td>
  <td>${x.synced === undefined ? "–" : x.synced ? "synced" : "behind"}</td>
  <td>${scanned}</td>
</tr>`;
  });
  const origin = m.origin.error ? `<p class="warn">The origin's lists could not be read: ${esc(m.origin.error)}</p>` : "";
  return `<h2>Mirrors</h2>
<p>${m.files} files in the origin's lists${m.origin.read ? `, read ${ago(Date.parse(m.origin.read), now)} ago` : ""}.</p>${origin}
<table><thead><tr><th>mirror</th><th>url</th><th>country</th><th>health</th><th>freshness (files it carries)</th><th>trace</th><th>last scan</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody></table>`;
}

/** The whole page. */
export function renderStatusPage(d: StatusData): string {
  const rows = d.edges
    .map(
      (e) => `<tr data-edge="${esc(e.name)}" data-state="${esc(e.state)}">
  <td><span class="dot" style="background:${COLORS[e.state] ?? "#57606a"}"></span>${esc(e.name)}</td>
  <td class="state">${esc(e.state)}${e.drained ? " (drained)" : ""}</td>
  <td>${ago(e.since, d.generatedAt)}</td>
  <td>${esc(e.detail ?? (e.url ? "" : "not probed (no url)"))}</td>
  <td class="in">${e.inAnswers === undefined ? "–" : e.inAnswers ? "yes" : "no"}</td>
  <td class="anycast">${esc(e.anycast ?? "-")}</td>
  <td class="control${e.control && e.control !== "current" && e.control !== "-" ? " warn" : ""}">${esc(e.control ?? "-")}</td>
  <td class="heartbeat">${esc(e.heartbeat ?? "-")}</td>
  <td>${esc(e.ipv4 ?? e.ipv6 ?? "")}</td>
  <td>${e.lat.toFixed(2)}, ${e.lon.toFixed(2)}</td>
  <td class="num">${e.answers}</td>
  <td class="num">${pct(e.hitRatio)}</td>
  <td class="num">${e.requests ?? "–"}</td>
  <td class="tier">${e.tier ?? "–"}</td>
</tr>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>parrot-cdn status: ${esc(d.zone)}</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:68rem;padding:0 1rem;color:#1f2328}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.5rem}svg{width:100%;height:auto;border:1px solid #d0d7de;border-radius:6px}
svg text{font-size:13px;fill:#1f2328}table{border-collapse:collapse;width:100%;margin-top:1rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #d0d7de}.num{text-align:right}
.dot{display:inline-block;width:.7rem;height:.7rem;border-radius:50%;margin-right:.4rem}
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem;border-radius:6px}
</style></head><body>
<h1>parrot-cdn — ${esc(d.zone)}</h1>
<p>DNS node <b>${esc(d.node)}</b> · ${d.queries} queries answered · ${new Date(d.generatedAt).toISOString()}</p>
${d.failOpen ? '<p class="warn">Too few edges are up: the director answers with all of them (fail-open).</p>' : ""}
${d.fallback ? '<p class="warn">Too few edges are up: the director answers its fallback (anycast) addresses.</p>' : ""}
${map(d.edges)}
<table><thead><tr><th>edge</th><th>health</th><th>for</th><th>last probe</th><th>in DNS</th><th>anycast</th><th>control</th><th>heartbeat</th><th>address</th><th>location</th><th class="num">DNS answers</th><th class="num">hit ratio</th><th class="num">requests</th><th>tier</th></tr></thead>
<tbody>
${rows}
</tbody></table>
${shieldTable(d.shields ?? [])}
${mirrorTable(d.mirrors, d.generatedAt)}
</body></html>
`;
}
