/**
 * npm run purge -- (--url URL… | --prefix URL… | --tag TAG… | --host HOST… | --all) [--soft]
 *                  [--config cdn.toml] [--token TOKEN] [--edge NAME…]
 * Purges at every edge of the config that has a `url` (or the named ones) and prints one line per edge.
 * The token: --token, else $PARROT_ADMIN_TOKEN, else [admin] token in the config. Exit status 1 if any edge failed.
 */
import { parseArgs } from "node:util";
import { parsePurgeRequest } from "../src/cache/purge.ts";
import { purgeAt } from "../src/edge/admin.ts";
import { loadConfigFile } from "../src/node/config-file.ts";

const { values } = parseArgs({
  options: {
    config: { type: "string", default: "cdn.toml" },
    url: { type: "string", multiple: true },
    prefix: { type: "string", multiple: true },
    tag: { type: "string", multiple: true },
    host: { type: "string", multiple: true },
    all: { type: "boolean", default: false },
    soft: { type: "boolean", default: false },
    token: { type: "string" },
    edge: { type: "string", multiple: true },
  },
});

const { config, path } = loadConfigFile(values.config!);
const req = parsePurgeRequest({
  urls: values.url,
  prefixes: values.prefix,
  tags: values.tag,
  hosts: values.host,
  all: values.all || undefined,
  soft: values.soft || undefined,
});
if (typeof req === "string") {
  console.error(`purge: ${req}`);
  process.exit(2);
}
const token = values.token ?? process.env.PARROT_ADMIN_TOKEN ?? config.admin.token;
if (!token) {
  console.error("purge: no admin token: pass --token, set PARROT_ADMIN_TOKEN or [admin] token");
  process.exit(2);
}
const edges = config.edges.filter((e) => e.url && (!values.edge || values.edge.includes(e.name)));
if (!edges.length) {
  console.error(`purge: ${path} lists no [[edges]] with a url${values.edge ? " of those names" : ""}`);
  process.exit(2);
}
const results = await Promise.all(edges.map((e) => purgeAt(e.name, e.url!, req, token)));
const urls = req.urls?.length ?? 0;
const here = (r: { stored?: number }) => (urls && r.stored !== undefined ? ` (${r.stored} of ${urls} URL${urls > 1 ? "s" : ""} stored here)` : "");
for (const r of results) console.log(`${r.ok ? "ok  " : "FAIL"} ${r.edge}${r.ok ? here(r) : `: ${r.status ?? ""} ${r.error ?? ""}`}`);
if (urls && results.every((r) => r.ok && r.stored === 0)) {
  console.log("note: no edge held any of these URLs. A cache key is host + path + query: purge with the host (and port)");
  console.log("      clients use, or by --prefix, --tag (the origin's Cache-Tag) or --host.");
}
process.exit(results.every((r) => r.ok) ? 0 : 1);
