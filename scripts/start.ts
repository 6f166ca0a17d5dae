/**
 * npm start: the whole CDN on this machine from the embedded default cdn.toml — the demo origin, one edge per
 * [[edges]] entry with a loopback url (127.0.0.2, .3, .4 on one port; with [[sites]], each behind its front door,
 * HTTPS on --https-port with this run's local CA), and the DNS node — then the seed's "how to test the CDN" checks,
 * adapted to it. Ctrl-C stops everything.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "../src/node/children.ts";
import { runDemoCdn, type DemoCdnOptions } from "../src/node/demo-cdn.ts";

const { values } = parseArgs({
  options: {
    config: { type: "string", default: "cdn.toml" },
    port: { type: "string", default: "8787" },
    "https-port": { type: "string", default: "8443" },
    "origin-port": { type: "string", default: "8080" },
    "dns-port": { type: "string", default: "5353" },
    "doh-port": { type: "string", default: "8053" },
    "state-dir": { type: "string", default: join(ROOT, ".parrot/start") },
  },
});

await runDemoCdn(values as DemoCdnOptions);
