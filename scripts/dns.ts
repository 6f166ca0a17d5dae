/**
 * The GeoDNS node: `npm run dns -- --config <file> --port <http-port> --dns-port <udp/tcp-port> [--tls-port <n>]
 * [--dot-port <n>] [--host <addr>] [--workers <n>]`; DNSSEC helpers: `npm run dns -- keygen --out <file>` and
 * `npm run dns -- ds --config <file> [--anchors]` (src/node/dns-main.ts). This process replaces itself with the node
 * bundled into JavaScript (src/node/dns-bundle.ts: a third less memory than running the TypeScript); when it cannot,
 * it says why and runs the sources.
 */
import { execBundledDnsNode } from "../src/node/dns-bundle.ts";

const reason = await execBundledDnsNode();
process.stderr.write(`dns: running from the TypeScript sources (${reason})\n`);
await import("../src/node/dns-main.ts");
