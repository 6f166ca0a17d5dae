/**
 * npm run purge -- (--url URL… | --prefix URL… | --tag TAG… | --host HOST… | --all) [--soft]
 *                  [--config cdn.toml] [--edge NAME…] [--wait [--timeout S]] [--token TOKEN]
 * With [control]: publishes the purge to the control plane (stored durably, every edge box applies it, one that is
 *   down or cut off when it returns) and prints which edges have applied it so far; --wait waits until all known
 *   edges have (at most --timeout seconds, default 30) and exits 1 naming those still pending. Exit 1 when the
 *   control plane did not store it.
 * Without: purges at every edge of the config that has a `url` (or the named ones), one line per edge, exit 1 if
 *   any failed; the token: --token, else $PARROT_ADMIN_TOKEN, else [admin] token.
 */
import { parseArgs } from "node:util";
import { parsePurgeRequest } from "../src/cache/purge.ts";
import { purgeThroughControl } from "../src/control/purge-command.ts";
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
    wait: { type: "boolean", default: false },
    timeout: { type: "string", default: "30" },
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
const timeout = Number(values.timeout);
if (!(timeout > 0 && timeout <= 86_400)) {
  console.error(`purge: --timeout must be seconds from 1 to 86400, not ${values.timeout}`);
  process.exit(2);
}
if (config.control) {
  const code = await purgeThroughControl(
    config,
    req,
    { targets: values.edge, wait: values.wait, timeoutMs: timeout * 1000 },
    (line) => console.log(line),
    (line) => console.error(line),
  );
  process.exit(code);
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
// The direct fan-out answers when every edge has (each within 10 s): --wait changes nothing here.
const results = await Promise.all(edges.map((e) => purgeAt(e.name, e.url!, req, token)));
const urls = req.urls?.length ?? 0;
const here = (r: { stored?: number }) => (urls && r.stored !== undefined ? ` (${r.stored} of ${urls} URL${urls > 1 ? "s" : ""} stored here)` : "");
for (const r of results) console.log(`${r.ok ? "ok  " : "FAIL"} ${r.edge}${r.ok ? here(r) : `: ${r.status ?? ""} ${r.error ?? ""}`}`);
if (urls && results.every((r) => r.ok && r.stored === 0)) {
  console.log("note: no edge held any of these URLs. A cache key is host + path + query: purge with the host (and port)");
  console.log("      clients use, or by --prefix, --tag (the origin's Cache-Tag) or --host.");
}
process.exit(results.every((r) => r.ok) ? 0 : 1);
