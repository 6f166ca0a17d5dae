/**
 * The mixed-workload benchmark's origin (scripts/bench/mix.sh): `node scripts/bench/mix-origin.ts --port P` answers
 * any path ending in `-<size>.<ext>` with a generated object of that many bytes, typed by the extension (Range, strong
 * ETag, Last-Modified: src/demo-origin/generated.ts), cacheable for a day; /__sent gives the body bytes sent so far.
 * Stateless: the client's path lists decide every object.
 */
import { parseArgs } from "node:util";
import { answerGenerated } from "../../src/demo-origin/generated.ts";
import { serveFetch } from "../../src/node/serve-fetch.ts";

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  css: "text/css",
  js: "application/javascript",
  jpg: "image/jpeg",
  png: "image/png",
  deb: "application/vnd.debian.binary-package",
  iso: "application/x-iso9660-image",
};
const { values } = parseArgs({ options: { port: { type: "string", default: "0" } } });
let sent = 0;
const served = await serveFetch((req) => {
  const path = new URL(req.url).pathname;
  if (path === "/__sent") return Response.json({ bytes: sent });
  const m = /-(\d+)\.(\w+)$/.exec(path);
  const type = m && TYPES[m[2]!];
  if (!m || !type) return new Response("not found\n", { status: 404 });
  return answerGenerated(req, { size: Number(m[1]), contentType: type, cacheControl: "public, max-age=86400" }, (n) => (sent += n));
}, { port: Number(values.port) });
console.log(`mix origin ready: ${served.url}`);
