/**
 * The redirector's decision cost, in process (no network): 300 mirrors and 100,000 files (deterministic pseudo-random
 * placement, partial mirrors, ~5 % of files missing per mirror), clients from the GeoIP test data's addresses.
 * Measures (1) the pure choice (Chooser.choose), (2) whole answers (Redirector.handle: URL, GeoIP lookup, choice,
 * the 302 with its Link headers), each as decisions per second and CPU µs per decision, and (3) the scan planning
 * cost per mirror round (filesToCheck over 100,000 files), and the memory the state takes. Usage: node scripts/bench/redirector-decisions.ts [seconds]
 */
import { readFileSync } from "node:fs";
import { parseConfig } from "../../src/config/config.ts";
import { createGeoIp } from "../../src/geoip/geoip.ts";
import { mmdbSource } from "../../src/geoip/mmdb.ts";
import { FileState } from "../../src/redirector/mirror-state.ts";
import { Redirector } from "../../src/redirector/redirector.ts";
import { filesToCheck } from "../../src/redirector/scan.ts";

const SECONDS = Number(process.argv[2] ?? 3);
const MIRRORS = Number(process.env.MIRRORS ?? 300);
const FILES = Number(process.env.FILES ?? 100_000);

let seed = 42;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
const COUNTRIES = ["DE", "FR", "GB", "US", "SE", "NL", "IT", "JP", "BR", "AU", "IN", "CN", "CA", "ES", "PL"];

let toml = `[redirector]\norigin = "http://origin.bench"\ncdn = "http://cdn.bench"\npaths = ["/**"]\n\n`;
for (let i = 0; i < MIRRORS; i++) {
  const partial = i % 10 === 0 ? `paths = ["/iso/**"]\n` : "";
  toml += `[[mirrors]]\nname = "m${i}"\nurl = "http://m${i}.bench/"\nlat = ${(rnd() * 140 - 70).toFixed(3)}\nlon = ${(rnd() * 360 - 180).toFixed(3)}\ncountry = "${COUNTRIES[i % COUNTRIES.length]}"\nweight = ${1 + Math.floor(rnd() * 200)}\n${partial}\n`;
}
const config = parseConfig(toml);
const geoip = createGeoIp([mmdbSource(readFileSync("test/fixtures/GeoIP2-City-Test.mmdb")), mmdbSource(readFileSync("test/fixtures/GeoLite2-ASN-Test.mmdb"))]);
const r = new Redirector({ config, geoip, fetch: async () => new Response(null, { status: 404 }) });
const files = Array.from({ length: FILES }, (_, i) => ({ path: i % 50 === 0 ? `/iso/image-${i}.iso` : `/debian/pool/main/p${i % 997}/pkg-${i}_1.0_all.deb`, size: 1000 + i, sha256: (i.toString(16) + "0".repeat(64)).slice(0, 64) }));
r.catalog.update(files, 0);
for (const m of r.mirrors) {
  m.follow(r.catalog);
  for (let id = 0; id < FILES; id++) if (m.files[id] !== FileState.NotCarried) m.files[id] = rnd() < 0.95 ? FileState.Present : FileState.Absent;
}
const clients = ["81.2.69.142", "81.2.69.160", "216.160.83.56", "89.160.20.112", "175.16.199.1", "202.196.224.1", "2.125.160.216", "67.43.156.1", "214.78.0.1", "149.101.100.1"].flatMap((ip) => {
  const b = ip.split(".").map(Number);
  return Array.from({ length: 10 }, (_, k) => `${b[0]}.${b[1]}.${b[2]}.${(b[3]! + k) % 256}`);
});
const locs = clients.map((ip) => r.locate(ip));

function measure(name: string, one: (i: number) => unknown) {
  for (let i = 0; i < 2000; i++) one(i); // warm-up (JIT, the ranking cache)
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let n = 0;
  while (performance.now() - t0 < SECONDS * 1000) for (let k = 0; k < 1000; k++) one(n++);
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const cpuUs = (cpu.user + cpu.system) / n;
  console.log(`${name}: ${Math.round(n / wall).toLocaleString("en")} decisions/s, ${cpuUs.toFixed(2)} µs CPU per decision (${n.toLocaleString("en")} in ${wall.toFixed(1)} s)`);
}

console.log(`redirector bench: ${MIRRORS} mirrors, ${FILES.toLocaleString("en")} files, ${clients.length} client addresses, ${SECONDS} s per phase`);
measure("choose (pure)", (i) => r.chooser.choose(locs[i % locs.length]!, clients[i % clients.length]!, r.catalog.files[(i * 7919) % FILES]!));
const requests = Array.from({ length: 4096 }, (_, i) => new URL(`http://redirector.bench${files[(i * 104729) % FILES]!.path}`).href);
let pending: Promise<Response>[] = [];
measure("handle (Request → 302)", (i) => {
  pending.push(r.handle(new Request(requests[i % requests.length]!), clients[i % clients.length]!));
  if (pending.length >= 1000) pending = [];
});
const t0 = process.cpuUsage();
let cursor = 0;
for (let k = 0; k < 20; k++) cursor = filesToCheck(r.mirrors[k]!, r.catalog, 500, cursor).cursor;
const scanCpu = process.cpuUsage(t0);
console.log(`scan planning: ${((scanCpu.user + scanCpu.system) / 20 / 1000).toFixed(1)} ms CPU per mirror round (${FILES.toLocaleString("en")} files, 500 HEADs)`);
const stateBytes = r.mirrors.reduce((n, m) => n + m.files.byteLength, 0);
const mem = process.memoryUsage();
console.log(`state: ${(stateBytes / 1e6).toFixed(1)} MB of per-file states; process RSS ${(mem.rss / 1e6).toFixed(0)} MB, heap ${(mem.heapUsed / 1e6).toFixed(0)} MB`);
