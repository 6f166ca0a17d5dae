/**
 * The DNS node's status page: every edge with its health, place (on a small self-drawn map), the DNS answers that
 * named it and its cache hit ratio. One HTML document, no scripts or assets from anywhere else.
 */

export interface EdgeStatus {
  name: string;
  url?: string;
  lat: number;
  lon: number;
  state: string;
  since: number;
  detail?: string;
  drained: boolean;
  /** DNS answers that named this edge since the node started. */
  answers: number;
  /** From the edge's own metrics; undefined when they could not be read. */
  hitRatio?: number;
  requests?: number;
}

export interface StatusData {
  zone: string;
  node: string;
  generatedAt: number;
  failOpen: boolean;
  queries: number;
  edges: EdgeStatus[];
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const COLORS: Record<string, string> = { up: "#1a7f37", unknown: "#9a6700", draining: "#0969da", down: "#cf222e" };

/** An equirectangular map 720×360: graticule every 30°, one labelled dot per edge. */
function map(edges: EdgeStatus[]): string {
  const x = (lon: number) => ((lon + 180) * 2).toFixed(1);
  const y = (lat: number) => ((90 - lat) * 2).toFixed(1);
  const grid: string[] = [];
  for (let lon = -180; lon <= 180; lon += 30) grid.push(`<line x1="${x(lon)}" y1="0" x2="${x(lon)}" y2="360"/>`);
  for (let lat = -90; lat <= 90; lat += 30) grid.push(`<line x1="0" y1="${y(lat)}" x2="720" y2="${y(lat)}"/>`);
  const dots = edges.map(
    (e) =>
      `<g><circle cx="${x(e.lon)}" cy="${y(e.lat)}" r="7" fill="${COLORS[e.state] ?? "#57606a"}"><title>${esc(e.name)}: ${esc(e.state)}</title></circle>` +
      `<text x="${Number(x(e.lon)) + 10}" y="${Number(y(e.lat)) + 4}">${esc(e.name)}</text></g>`,
  );
  return `<svg viewBox="0 0 720 360" role="img" aria-label="edge locations"><rect width="720" height="360" fill="#eef4fb"/><g stroke="#c8d6e5" stroke-width="1">${grid.join("")}</g>${dots.join("")}</svg>`;
}

const pct = (r?: number) => (r === undefined ? "–" : `${(r * 100).toFixed(1)} %`);
const ago = (since: number, now: number) => {
  const s = Math.max(0, Math.round((now - since) / 1000));
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
};

/** The whole page. */
export function renderStatusPage(d: StatusData): string {
  const rows = d.edges
    .map(
      (e) => `<tr data-edge="${esc(e.name)}" data-state="${esc(e.state)}">
  <td><span class="dot" style="background:${COLORS[e.state] ?? "#57606a"}"></span>${esc(e.name)}</td>
  <td class="state">${esc(e.state)}${e.drained ? " (drained)" : ""}</td>
  <td>${ago(e.since, d.generatedAt)}</td>
  <td>${esc(e.detail ?? "")}</td>
  <td>${e.lat.toFixed(2)}, ${e.lon.toFixed(2)}</td>
  <td class="num">${e.answers}</td>
  <td class="num">${pct(e.hitRatio)}</td>
  <td class="num">${e.requests ?? "–"}</td>
</tr>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>parrot-cdn status: ${esc(d.zone)}</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1f2328}
h1{font-size:1.4rem}svg{width:100%;height:auto;border:1px solid #d0d7de;border-radius:6px}
svg text{font-size:13px;fill:#1f2328}table{border-collapse:collapse;width:100%;margin-top:1rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #d0d7de}.num{text-align:right}
.dot{display:inline-block;width:.7rem;height:.7rem;border-radius:50%;margin-right:.4rem}
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem;border-radius:6px}
</style></head><body>
<h1>parrot-cdn — ${esc(d.zone)}</h1>
<p>DNS node <b>${esc(d.node)}</b> · ${d.queries} queries answered · ${new Date(d.generatedAt).toISOString()}</p>
${d.failOpen ? '<p class="warn">Too few edges are up: the director answers with all of them (fail-open).</p>' : ""}
${map(d.edges)}
<table><thead><tr><th>edge</th><th>health</th><th>for</th><th>last probe</th><th>location</th><th class="num">DNS answers</th><th class="num">hit ratio</th><th class="num">requests</th></tr></thead>
<tbody>
${rows}
</tbody></table>
</body></html>
`;
}
