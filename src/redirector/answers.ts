/**
 * What clients get from the redirector, as standard Responses: a 302 with RFC 6249 `Link: rel=duplicate` headers and
 * the file's digest (RFC 9530 `Repr-Digest`, RFC 3230 `Digest`); a Metalink 4 document (RFC 5854) for aria2c and
 * other multi-source clients; an apt mirror list (apt-transport-mirror's format); the mirror list of a file as a
 * page and as JSON.
 */
import type { CatalogFile } from "./catalog.ts";
import type { Ranked } from "./choose.ts";
import { FileState, type MirrorState } from "./mirror-state.ts";
import { urlFor } from "./scan.ts";

/** Tailored answers are the client's own: never stored by a shared cache. */
const PRIVATE = "private, no-cache";

export const METALINK_TYPE = "application/metalink4+xml";

/** The URL of `path` on a mirror. */
export function mirrorUrl(m: MirrorState, path: string): string {
  return urlFor(m.config.url, path);
}

/** Base64 of the bytes a hex string stands for. */
export function hexToBase64(hex: string): string {
  let bin = "";
  for (let i = 0; i < hex.length; i += 2) bin += String.fromCharCode(parseInt(hex.slice(i, i + 2), 16));
  return btoa(bin);
}

const geo = (m: MirrorState) => m.location.country?.toLowerCase();

/** `Link` values for the mirrors (pri 1 first) and the CDN last. */
export function linkHeader(path: string, chosen: Ranked[], cdn: string): string {
  const links = chosen.map((r, i) => {
    const cc = geo(r.mirror);
    return `<${mirrorUrl(r.mirror, path)}>; rel=duplicate; pri=${i + 1}${cc ? `; geo=${cc}` : ""}`;
  });
  links.push(`<${urlFor(cdn, path)}>; rel=duplicate; pri=${chosen.length + 1}`);
  return links.join(", ");
}

function digestHeaders(file: CatalogFile | undefined): Record<string, string> {
  if (!file?.sha256) return {};
  const b64 = hexToBase64(file.sha256);
  return { "repr-digest": `sha-256=:${b64}:`, digest: `SHA-256=${b64}` };
}

/** 302 to the first mirror, the others as Links. */
export function redirectAnswer(path: string, file: CatalogFile, chosen: Ranked[], cdn: string): Response {
  const target = mirrorUrl(chosen[0]!.mirror, path);
  // No body: a text body costs Node's Response a stream (~20 µs, most of an answer's CPU); clients follow Location.
  return new Response(null, {
    status: 302,
    headers: { location: target, link: linkHeader(path, chosen, cdn), ...digestHeaders(file), "cache-control": PRIVATE, "x-mirror": chosen[0]!.mirror.config.name },
  });
}

/** 302 to the CDN itself: no usable mirror has this exact file (or it is not in the origin's lists). */
export function cdnAnswer(path: string, search: string, file: CatalogFile | undefined, cdn: string, reason: string): Response {
  const target = urlFor(cdn, path) + search;
  return new Response(null, {
    status: 302,
    headers: { location: target, ...digestHeaders(file), "cache-control": PRIVATE, "x-mirror": "cdn", "x-mirror-reason": reason },
  });
}

const xml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Metalink 4 (RFC 5854): size, SHA-256, the mirrors by priority and the CDN last. */
export function metalinkAnswer(path: string, file: CatalogFile, chosen: Ranked[], cdn: string, now: number): Response {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const urls = chosen.map((r, i) => {
    const cc = geo(r.mirror);
    return `    <url${cc ? ` location="${cc}"` : ""} priority="${i + 1}">${xml(mirrorUrl(r.mirror, path))}</url>`;
  });
  urls.push(`    <url priority="${chosen.length + 1}">${xml(urlFor(cdn, path))}</url>`);
  const body = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<metalink xmlns="urn:ietf:params:xml:ns:metalink">`,
    `  <generator>parrot-cdn redirector</generator>`,
    `  <published>${new Date(now).toISOString().replace(/\.\d+Z$/, "Z")}</published>`,
    `  <file name="${xml(name)}">`,
    ...(file.size !== undefined ? [`    <size>${file.size}</size>`] : []),
    ...(file.sha256 ? [`    <hash type="sha-256">${file.sha256}</hash>`] : []),
    ...urls,
    `  </file>`,
    `</metalink>`,
    "",
  ].join("\n");
  return new Response(body, {
    headers: {
      "content-type": METALINK_TYPE,
      "content-disposition": `attachment; filename="${name.replace(/["\\]/g, "_")}.meta4"`,
      // No Digest / Repr-Digest here: they would describe this document (aria2c checks them against it).
      "cache-control": PRIVATE,
    },
  });
}

/**
 * apt's mirror list for an archive: the mirrors for this client in order, each `type:deb` with its priority (apt
 * tries the next on a 404: a lagging mirror costs one request), and the CDN last with no type, so index files
 * (InRelease, Packages) come from the CDN only and packages fall back to it.
 */
export function aptMirrorListAnswer(archive: string, ranked: Ranked[], cdn: string): Response {
  const lines = ["# parrot-cdn: mirrors for this client, nearest first; the CDN last (and the only one for index files)"];
  ranked.forEach((r, i) => lines.push(`${urlFor(r.mirror.config.url, archive)}\tpriority:${i + 1}\ttype:deb`));
  lines.push(urlFor(cdn, archive));
  return new Response(lines.join("\n") + "\n", { headers: { "content-type": "text/plain; charset=utf-8", "cache-control": PRIVATE } });
}

const STATE_NAMES: Record<number, string> = {
  [FileState.Unknown]: "unchecked",
  [FileState.Present]: "up to date",
  [FileState.Absent]: "missing",
  [FileState.Wrong]: "wrong size or checksum",
  [FileState.NotCarried]: "not carried",
};

export interface MirrorListEntry {
  name: string;
  url: string;
  country?: string;
  km?: number;
  /** Chosen for this client (in order) or not. */
  rank?: number;
  state: string;
  has: boolean;
  up: boolean;
  /** When the mirror was last scanned (its answer for this file is from then or before). */
  scanned?: string;
  failures: number;
}

/** Every mirror that carries the file, ranked for the client (chosen ones first), with its freshness. */
export function mirrorListEntries(path: string, file: CatalogFile | undefined, ranked: Ranked[], chosen: Ranked[], maxFailures: number): MirrorListEntry[] {
  const order = new Map(chosen.map((r, i) => [r.mirror, i + 1]));
  const rows = ranked
    .filter((r) => r.mirror.carriesPath(path))
    .map((r): MirrorListEntry => {
      const m = r.mirror;
      const st = file ? m.files[file.id]! : FileState.Unknown;
      const at = m.lastScan;
      return {
        name: m.config.name,
        url: mirrorUrl(m, path),
        ...(m.location.country ? { country: m.location.country } : {}),
        ...(r.km < 20_000 ? { km: Math.round(r.km) } : {}),
        ...(order.has(m) ? { rank: order.get(m) } : {}),
        state: st === FileState.Unknown && m.synced ? "synced (trace)" : STATE_NAMES[st]!,
        has: file ? m.has(file.id) : false,
        up: m.usable(maxFailures),
        ...(at ? { scanned: new Date(at).toISOString() } : {}),
        failures: m.failures,
      };
    });
  return rows.sort((a, b) => (a.rank ?? 1e9) - (b.rank ?? 1e9));
}

export function mirrorListJson(path: string, file: CatalogFile | undefined, entries: MirrorListEntry[], client: Record<string, unknown>): Response {
  const body = { path, size: file?.size, sha256: file?.sha256, client, mirrors: entries };
  return new Response(JSON.stringify(body, null, 2) + "\n", { headers: { "content-type": "application/json", "cache-control": PRIVATE } });
}

export function mirrorListPage(path: string, file: CatalogFile | undefined, entries: MirrorListEntry[], cdn: string): Response {
  const rows = entries
    .map(
      (e) =>
        `<tr><td>${e.rank ?? ""}</td><td><a href="${xml(e.url)}">${xml(e.name)}</a></td><td>${e.country ?? ""}</td><td>${e.km ?? ""}</td><td>${xml(e.state)}</td><td>${e.up ? "up" : `down (${e.failures} failures)`}</td><td>${e.scanned ?? ""}</td></tr>`,
    )
    .join("\n");
  const body = `<!doctype html>
<html><head><meta charset="utf-8"><title>Mirrors of ${xml(path)}</title></head><body>
<h1>Mirrors of ${xml(path)}</h1>
<p>${file ? `${file.size ?? "?"} bytes${file.sha256 ? `, SHA-256 <code>${file.sha256}</code>` : ""}` : "Not in the origin's file lists."}</p>
<table border="1"><tr><th>#</th><th>mirror</th><th>country</th><th>km</th><th>this file</th><th>health</th><th>last scan</th></tr>
${rows}
</table>
<p>Always available from the CDN: <a href="${xml(urlFor(cdn, path))}">${xml(urlFor(cdn, path))}</a></p>
</body></html>
`;
  return new Response(body, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": PRIVATE } });
}
