/**
 * npm start: the whole CDN on this machine from the embedded default cdn.toml — the demo origin, one edge per
 * [[edges]] entry with a url on this machine (127.0.0.2, .3, .4 on one port; with [[sites]], each behind its front door,
 * HTTPS on --https-port with this run's local CA, HTTP/3 on --http3-port when Caddy is installed), and the DNS node — then the seed's "how to test the CDN" checks,
 * adapted to it. Ctrl-C stops everything.
 * --edge-hosts A,B,C puts those edges on other addresses of this machine (in [[edges]] order; the director answers
 * them), --dns-host the DNS node (default 127.0.0.1; 0.0.0.0 for every address).
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "../src/node/children.ts";
import { runDemoCdn, type DemoCdnOptions } from "../src/node/demo-cdn.ts";

function parsedArgs() {
  try {
    return parseArgs({
      options: {
        config: { type: "string", default: "cdn.toml" },
        port: { type: "string", default: "8787" },
        "https-port": { type: "string", default: "8443" },
        // HTTP/3 (Caddy, UDP and TCP) on each edge's address; default: the HTTPS port + 1.
        "http3-port": { type: "string" },
        "origin-port": { type: "string", default: "8080" },
        "dns-port": { type: "string", default: "5353" },
        "doh-port": { type: "string", default: "8053" },
        "redirector-port": { type: "string", default: "8790" },
        "state-dir": { type: "string", default: join(ROOT, ".parrot/start") },
        "edge-hosts": { type: "string" },
        "dns-host": { type: "string", default: "127.0.0.1" },
      },
    });
  } catch (err) {
    console.error(`start: ${(err as Error).message}`);
    process.exit(2);
  }
}
const { values } = parsedArgs();

await runDemoCdn(values as DemoCdnOptions);
