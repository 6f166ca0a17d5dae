/**
 * npm start: the whole CDN on this machine from the embedded default cdn.toml — the demo origin, an edge in front
 * of it, and the DNS node — then the seed's "how to test the CDN" checks, adapted to it. Ctrl-C stops everything.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { demoOrigin } from "../src/demo-origin/origin.ts";
import { loadConfigFile, withOverrides } from "../src/node/config-file.ts";
import { startEdgeMiniflare } from "../src/node/edge-host.ts";
import { serveFetch } from "../src/node/serve-fetch.ts";

const { values } = parseArgs({
  options: {
    config: { type: "string", default: "cdn.toml" },
    port: { type: "string", default: "8787" },
    "origin-port": { type: "string", default: "8080" },
    "dns-port": { type: "string", default: "5353" },
    "doh-port": { type: "string", default: "8053" },
  },
});

const file = loadConfigFile(values.config!);
const origin = await serveFetch(demoOrigin, { port: Number(values["origin-port"]) });
console.log(`demo origin  ${origin.url}`);
const edge = await startEdgeMiniflare({ configText: withOverrides(file, { origin: origin.url }), port: Number(values.port) });
console.log(`edge         ${edge.url}  (origin ${origin.url})`);

// The DNS node is its own process, as on a real DNS box.
const dns = spawn(
  process.execPath,
  [resolve(import.meta.dirname, "dns.ts"), "--config", file.path, "--port", values["doh-port"]!, "--dns-port", values["dns-port"]!],
  { stdio: ["ignore", "pipe", "inherit"] },
);
let dnsAddress = "";
for await (const line of createInterface({ input: dns.stdout! })) {
  const udp = /^dns udp\+tcp (\S+):(\d+)$/.exec(line);
  if (udp) dnsAddress = `@${udp[1]} -p ${udp[2]}`;
  if (/^dns http /.test(line)) {
    console.log(`dns node     ${line.replace(/^dns /, "")}, udp+tcp ${dnsAddress.replace("@", "").replace(" -p ", ":")}`);
    break;
  }
  if (line.startsWith("GeoIP:")) console.log(line);
}
dns.stdout!.resume();
const zone = file.config.dns?.zone ?? "geo.example.org";
const director = `${file.config.dns?.director.name ?? "director"}.${zone}`;

console.log(`
Test how the CDN sees your requests (from here you are 127.0.0.1; +subnet asks as another client would):
  dig -t txt ${dnsAddress} ${director} | grep country
  dig -t txt ${dnsAddress} +subnet=185.178.92.254/32 ${director} | grep country

Test how the CDN resolves for you:
  dig ${dnsAddress} +short ${director} A ${director} AAAA

Test how the CDN caches content (run it twice: MISS, then HIT):
  curl -sI ${edge.url}/img/logo.png | grep -i X-Cache-Status

Ctrl-C stops everything.`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  const dnsExited = dns.exitCode === null ? once(dns, "exit") : Promise.resolve();
  dns.kill("SIGTERM");
  const force = setTimeout(() => dns.kill("SIGKILL"), 3000);
  await Promise.allSettled([edge.stop(), origin.close(), dnsExited]);
  clearTimeout(force);
  process.exit(0);
}
process.on("exit", () => dns.kill("SIGKILL"));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
dns.once("exit", (code) => {
  if (!stopping) {
    console.error(`the DNS node stopped (${code}); stopping everything`);
    void stop();
  }
});
