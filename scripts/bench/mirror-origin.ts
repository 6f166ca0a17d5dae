/**
 * The mirror benchmark's origin: `node scripts/bench/mirror-origin.ts --port P --size BYTES` serves generated objects
 * of that size at /iso/<anything> (Range, strong ETag, If-Match: src/demo-origin/generated.ts) and the body bytes
 * sent per path at /__sent.
 */
import { parseArgs } from "node:util";
import { generatedSite, type GeneratedObject } from "../../src/demo-origin/generated.ts";
import { serveFetch } from "../../src/node/serve-fetch.ts";

const { values } = parseArgs({ options: { port: { type: "string", default: "0" }, size: { type: "string", default: "2000000000" } } });
const size = Number(values.size);
if (!Number.isSafeInteger(size) || size <= 0) throw new Error(`--size must be a positive whole number, not ${values.size}`);
const obj: GeneratedObject = { size, cacheControl: "public, max-age=3600", contentType: "application/x-iso9660-image" };
const objects = new Map<string, GeneratedObject>();
const site = generatedSite(objects);
const served = await serveFetch((req) => {
  const path = new URL(req.url).pathname;
  if (path.startsWith("/iso/") && !objects.has(path)) objects.set(path, obj);
  return site.handle(req);
}, { port: Number(values.port) });
console.log(`mirror origin ready: ${served.url}`);
