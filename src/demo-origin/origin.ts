/**
 * The demo origin `npm start` puts behind the edge: a few pages and an image whose headers show every cache state
 * (README, "Put the edge in front of any origin"): a long-lived image (MISS, HIT), a slow page with
 * stale-while-revalidate (STALE, UPDATING), an apt-style index that must be revalidated (REVALIDATED), a clock
 * without validators (EXPIRED), a page with stale-if-error (STALE when the origin is down), a no-store API and a
 * private page. And a mirror (docs/mirrors.md): a 300 MiB installer image generated as it is sent, its SHA256SUMS,
 * and a small Debian archive under /debian/. A plain fetch handler for Node (src/node/serve-fetch.ts serves it).
 */
import { createHash } from "node:crypto";
import { buildDemoArchive } from "./apt-archive.ts";
import { answerGenerated, answerStatic, generatedHeaders, type GeneratedObject } from "./generated.ts";

const LOGO_PNG = Uint8Array.from(atob("iVBORw0KGgoAAAANSUhEUgAAABgAAAAYCAIAAABvFaqvAAAARklEQVR42mP4TyXAMHQM0tgShQuRYBAeU3CZxUCqEbiMo41BJJmCZhYDJaYgmzVq0KhB1DWIail7UGZaapZHVC4hB7LwBwAkKJtmFSNbvwAAAABJRU5ErkJggg=="), (c) => c.charCodeAt(0));
const STARTED = new Date();

/** The home page: what each demo path shows (and, at over a kilobyte of HTML, a page the edge compresses). */
const HOME = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>parrot-cdn demo</title>
<link rel="stylesheet" href="/css/site.css"></head>
<body><h1>parrot-cdn demo origin</h1>
<p><img src="/img/logo.png" alt="logo" width="24" height="24"> This origin sits behind the edges that <code>npm start</code>
runs. Each path below is made to show one of the cache's states; request it through an edge with <code>curl -sI</code>
and read <code>X-Cache-Status</code> and <code>Cache-Status</code>.</p>
<table>
<tr><th>path</th><th>headers</th><th>what you see through an edge</th></tr>
<tr><td><a href="/img/logo.png">/img/logo.png</a></td><td>max-age=3600, Cache-Tag: img</td><td>MISS, then HIT with a growing Age</td></tr>
<tr><td><a href="/css/site.css">/css/site.css</a></td><td>max-age=300, stale-while-revalidate=60</td><td>HIT for five minutes, then STALE while it refreshes</td></tr>
<tr><td><a href="/news.html">/news.html</a></td><td>max-age=10, stale-if-error=86400</td><td>STALE when the origin is down</td></tr>
<tr><td><a href="/dists/parrot/InRelease">/dists/parrot/InRelease</a></td><td>max-age=10, must-revalidate, ETag</td><td>REVALIDATED after ten seconds</td></tr>
<tr><td><a href="/slow.html">/slow.html</a></td><td>max-age=5, stale-while-revalidate=60, a two-second origin</td><td>STALE, then UPDATING while the refresh waits</td></tr>
<tr><td><a href="/clock.txt">/clock.txt</a></td><td>max-age=5, no validators</td><td>EXPIRED after five seconds</td></tr>
<tr><td><a href="/private.html">/private.html</a></td><td>private</td><td>never stored: MISS every time</td></tr>
<tr><td><a href="/api/time">/api/time</a></td><td>no-store</td><td>never stored</td></tr>
</table>
<p>Purge the logo at every edge by its tag with <code>npm run purge -- --tag img</code>, and this page is served to
your browser compressed (br or gzip) by the edge, stored once per coding.</p>
</body></html>
`;

interface Page {
  type: string;
  cacheControl: string;
  body: () => string | Uint8Array;
  /** Changes every `versionEvery` seconds (so revalidation finds news), else never. */
  versionEvery?: number;
  /** Answers this late (a slow origin: UPDATING shows while a refresh waits for it). */
  delayMs?: number;
  /** Send ETag and Last-Modified (default): without them a stale copy cannot be revalidated, only replaced. */
  validators?: boolean;
  /** Cache-Tag: purge by tag (`npm run purge -- --tag img`) reaches it at every edge, whatever host it was cached under. */
  tag?: string;
}

const pages: Record<string, Page> = {
  "/": {
    type: "text/html; charset=utf-8",
    cacheControl: "public, max-age=60",
    body: () => HOME,
  },
  "/img/logo.png": { type: "image/png", cacheControl: "public, max-age=3600", body: () => LOGO_PNG, tag: "img" },
  "/css/site.css": { type: "text/css", cacheControl: "public, max-age=300, stale-while-revalidate=60", body: () => "body{font-family:sans-serif}\n" },
  "/news.html": {
    type: "text/html; charset=utf-8",
    cacheControl: "public, max-age=10, stale-while-revalidate=30, stale-if-error=86400",
    versionEvery: 30,
    body: () => `<!doctype html><title>news</title><p>news as of ${new Date().toISOString()}</p>\n`,
  },
  "/dists/parrot/InRelease": {
    type: "text/plain",
    cacheControl: "public, max-age=10, must-revalidate",
    versionEvery: 3600,
    body: () => "Origin: Parrot\nSuite: demo\n",
  },
  "/slow.html": {
    type: "text/html; charset=utf-8",
    cacheControl: "public, max-age=5, stale-while-revalidate=60",
    versionEvery: 5,
    delayMs: 2000,
    body: () => `<!doctype html><title>slow</title><p>took two seconds, at ${new Date().toISOString()}</p>\n`,
  },
  "/clock.txt": {
    type: "text/plain",
    cacheControl: "public, max-age=5",
    validators: false,
    body: () => `${new Date().toISOString()}\n`,
  },
  "/private.html": { type: "text/html; charset=utf-8", cacheControl: "private, max-age=60", body: () => "<p>only for you</p>\n" },
};

/** The demo installer image: 300 MiB of generated bytes (byte i is (i + 42) mod 251), Range-capable, strong ETag. */
export const DEMO_ISO_PATH = "/iso/parrot-demo-1.0-amd64.iso";
const DEMO_ISO: GeneratedObject = {
  size: 300 * 1024 * 1024,
  seed: 42,
  etag: '"parrot-demo-1.0"',
  cacheControl: "public, max-age=86400",
  contentType: "application/x-iso9660-image",
};
let sha256sums: Promise<Uint8Array> | undefined;
let archive: Map<string, Uint8Array> | undefined;

/** SHA256SUMS of the image, computed from its generated bytes once (about a second). */
async function isoSums(): Promise<Uint8Array> {
  const hash = createHash("sha256");
  const body = answerGenerated(new Request("http://demo" + DEMO_ISO_PATH), DEMO_ISO).body!;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) hash.update(chunk);
  return new TextEncoder().encode(`${hash.digest("hex")}  ${DEMO_ISO_PATH.split("/").pop()}\n`);
}

/** The mirror part of the demo: the image, its checksums and the Debian archive; undefined for other paths. */
async function mirror(request: Request, path: string): Promise<Response | undefined> {
  if (path === DEMO_ISO_PATH) return answerGenerated(request, DEMO_ISO);
  let bytes: Uint8Array | undefined;
  let type = "text/plain; charset=utf-8";
  let cacheControl = "public, max-age=60";
  if (path === "/iso/SHA256SUMS") bytes = await (sha256sums ??= isoSums());
  else if (path.startsWith("/debian/")) {
    bytes = (archive ??= buildDemoArchive()).get(path.slice("/debian/".length));
    if (path.endsWith(".deb")) type = "application/vnd.debian.binary-package";
    else if (path.endsWith(".gz")) type = "application/gzip";
    cacheControl = ""; // as a plain static mirror: the edge's rules decide
  }
  if (!bytes) return undefined;
  const found = bytes;
  const headers = generatedHeaders({ size: found.byteLength, etag: `"${createHash("sha256").update(found).digest("hex").slice(0, 16)}"`, contentType: type, cacheControl });
  return answerStatic(request, found.byteLength, headers, true, (start, length) => found.subarray(start, start + length));
}

/** Answers the demo site; conditionals get 304 from the page's ETag. */
export async function demoOrigin(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const mirrored = await mirror(request, url.pathname);
  if (mirrored) return mirrored;
  if (url.pathname === "/api/time") {
    return Response.json({ now: new Date().toISOString() }, { headers: { "cache-control": "no-store" } });
  }
  const page = pages[url.pathname];
  if (!page) return new Response("not found\n", { status: 404, headers: { "content-type": "text/plain", "cache-control": "max-age=30" } });
  if (page.delayMs) await new Promise((r) => setTimeout(r, page.delayMs));
  const version = page.versionEvery ? Math.floor(Date.now() / 1000 / page.versionEvery) : 0;
  const etag = `"${url.pathname.length.toString(16)}-${version}"`;
  const headers = new Headers({ "content-type": page.type, "cache-control": page.cacheControl });
  if (page.tag) headers.set("cache-tag", page.tag);
  if (page.validators !== false) {
    headers.set("etag", etag);
    headers.set("last-modified", STARTED.toUTCString());
    if (request.headers.get("if-none-match") === etag) return new Response(null, { status: 304, headers });
  }
  const body = page.body();
  headers.set("content-length", String(typeof body === "string" ? new TextEncoder().encode(body).byteLength : body.byteLength));
  return new Response(request.method === "HEAD" ? null : body, { headers });
}
