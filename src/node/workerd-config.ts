/**
 * The bare workerd config (capnp text) of an edge box, from the project's own config: a pure function, so it is
 * unit-tested and the host only writes files and starts the process.
 *
 *   socket "http" (or https with the configured keypair) → worker "edge" (the edge bundle, CDN_CONFIG text)
 *   edge: globalOutbound "origin-net" (public addresses; private/loopback only when an origin or shield itself is one),
 *         cacheApiOutbound "store", binding STORE = "store" (coalescing locks, stats), STORE_DISK = the store
 *         directory read-only ("store-read": checked bodies read from their files), GEOIP_* Data when configured
 *   store: the cache store worker (src/store/worker.ts) over the writable `disk` service "store-disk"; with several
 *          processes it runs in its own workerd (workerdStoreConfig) and "store" is an external service to it
 *
 * No `cfBlobHeader` anywhere: on a public socket it would let clients forge `request.cf` (and the client address).
 */
import { PRIVACY_KEY_ENV } from "./privacy-key.ts";
import { originsOf, type EdgeConfig } from "../config/edge-schema.ts";
import { parseIp } from "../net/ip.ts";
import type { StoreSettings } from "../contracts/store.ts";
import { functionBinding } from "../contracts/functions.ts";

export interface WorkerdEdgeConfigInput {
  compatibilityDate: string;
  compatibilityFlags: string[];
  edge: EdgeConfig;
  /** cdn.toml text given to the edge worker (at start; see configDir). */
  configText: string;
  /** Absolute folder whose cdn.toml the worker follows (bound read-only as CONFIG_DIR): reloads without a restart. */
  configDir?: string;
  /** `host:port` to listen on; omitted = the socket comes from the command line (`--socket-fd http=N`). */
  address?: string;
  /** Files next to the config (embedded by relative path). */
  files: { edge: string; store: string; index: string; tlsCert?: string; tlsKey?: string };
  /** Absolute path of the store directory. */
  storeDir: string;
  store: StoreSettings;
  /**
   * Several processes: the store runs in its own workerd (workerdStoreConfig) listening on this address
   * (`unix:/path` or `host:port`), and this config's edge reaches it as an external service. Omitted = one
   * process holding both.
   */
  storeAddress?: string;
  /** GeoIP files for the trace's `loc=` line, bound as Data (GEOIP_CITY, GEOIP_CITY_V6, GEOIP_ASN, GEOIP_ASN_V6). */
  geoip?: Partial<Record<GeoBinding, string>>;
  /** With [control]: the box's control agent (`unix:/path`), bound as CONTROL, and this box start's id (BOOT_ID). */
  control?: { address: string; bootId: string };
  /** Behind the front door (loopback only): the request URL takes its scheme from this header. */
  forwardedProtoHeader?: string;
  /**
   * `[[functions]]`: the slots for function processes (`unix:/path` each, bound as FN_<k>; functions.json beside the
   * edge's cdn.toml says which function is in which slot, functions-host.ts), and the socket the functions' fetch()
   * comes back on (`--socket-fd functions=N`, served by the edge worker's `fromFunction` entrypoint, which checks
   * each request's identity with `functionKey` and sends `allow_hosts` fetches out by FUNCTION_INTERNET).
   */
  functionSlots?: string[];
  functionKey?: string;
  /** The box host's socket for the edge (`unix:/path`), bound as FUNCTION_HOST: a function's CPU time, for the trace. */
  functionHost?: string;
}

export type GeoBinding = "GEOIP_CITY" | "GEOIP_CITY_V6" | "GEOIP_ASN" | "GEOIP_ASN_V6";

/** A capnp text literal. */
export function capnpString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return out + '"';
}

/** Whether the origin's host is a loopback or private address (or localhost): only then may workerd reach those. */
export function originIsPrivate(origin: string): boolean {
  const host = new URL(origin).hostname.replace(/^\[|\]$/g, "");
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  const ip = parseIp(host);
  if (!ip) return false;
  if (ip.length === 4) {
    const [a, b] = [ip[0]!, ip[1]!];
    return a === 127 || a === 10 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168) || (a === 169 && b === 254) || (a === 100 && b >= 64 && b < 128) || a === 0;
  }
  const allZero = ip.slice(0, 15).every((x) => x === 0);
  if (allZero && (ip[15] === 1 || ip[15] === 0)) return true; // ::1, ::
  if ((ip[0]! & 0xfe) === 0xfc) return true; // fc00::/7
  if (ip[0] === 0xfe && (ip[1]! & 0xc0) === 0x80) return true; // fe80::/10
  const v4mapped = ip.slice(0, 10).every((x) => x === 0) && ip[10] === 0xff && ip[11] === 0xff;
  if (v4mapped) return originIsPrivate(`http://${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}/`);
  return false;
}

export function workerdEdgeConfig(input: WorkerdEdgeConfigInput): string {
  const { edge, files } = input;
  // Shields are upstreams too: a shield box on a private network (the usual case) must be reachable.
  const upstreams = [...originsOf(edge).map((o) => o.url), ...(edge.shields ?? []).map((s) => s.url)];
  const allow = upstreams.some((url) => originIsPrivate(url)) ? '["public", "private"]' : '["public"]';
  const flags = `[${input.compatibilityFlags.map(capnpString).join(", ")}]`;
  const tls = files.tlsCert && files.tlsKey;
  const socketKind = tls
    ? `https = (options = (), tlsOptions = (keypair = (privateKey = embed ${capnpString(files.tlsKey!)}, certificateChain = embed ${capnpString(files.tlsCert!)})))`
    : `http = (${input.forwardedProtoHeader ? `forwardedProtoHeader = ${capnpString(input.forwardedProtoHeader)}` : ""})`;
  const address = input.address ? `address = ${capnpString(input.address)}, ` : "";
  const remote = input.storeAddress !== undefined;
  // The folder of the host's current cdn.toml (read-only): the worker follows it, so a reload needs no restart.
  const configDir = input.configDir ? `    (name = "config-dir", disk = (path = ${capnpString(input.configDir)})),\n` : "";
  const storeServices = remote
    ? `    (name = "store", external = (address = ${capnpString(input.storeAddress!)}, http = ())),\n`
    : `    (name = "store", worker = .storeWorker),\n    (name = "store-disk", disk = (path = ${capnpString(input.storeDir)}, writable = true)),\n`;
  // The edge reads checked bodies from the store's files itself (DISK_REF_HEADER): the same folder, read-only.
  const storeRead = `    (name = "store-read", disk = (path = ${capnpString(input.storeDir)})),\n`;
  const control = input.control
    ? `    (name = "control", external = (address = ${capnpString(input.control.address)}, http = ())),\n`
    : "";
  const controlBindings = input.control
    ? `,\n    (name = "CONTROL", service = "control"),\n    (name = "BOOT_ID", text = ${capnpString(input.control.bootId)})`
    : "";
  const fns = input.functionSlots ?? [];
  const fnServices = fns.map((address, k) => `    (name = "fn-${k}", external = (address = ${capnpString(address)}, http = ())),\n`).join("");
  const fnBindings = fns.map((_, k) => `,\n    (name = ${capnpString(functionBinding(k))}, service = "fn-${k}")`).join("") +
    (fns.length ? `,\n    (name = "FUNCTION_KEY", text = ${capnpString(input.functionKey ?? "")}),\n    (name = "FUNCTION_INTERNET", service = "fn-internet")` : "") +
    (fns.length && input.functionHost ? `,\n    (name = "FUNCTION_HOST", service = "fn-host")` : "");
  const fnInternet =
    (fns.length ? `    (name = "fn-internet", network = (allow = ["public"], tlsOptions = (trustBrowserCas = true))),\n` : "") +
    (fns.length && input.functionHost ? `    (name = "fn-host", external = (address = ${capnpString(input.functionHost)}, http = ())),\n` : "");
  // The functions' way back in: only their processes reach it (a unix socket in the run directory). Proxy style:
  // the request line carries the whole URL, so an https URL stays https (allow_hosts, the cache key).
  const fnSocket = fns.length ? `\n    (name = "functions", http = (style = proxy), service = (name = "edge", entrypoint = "fromFunction")),` : "";
  const geo = Object.entries(input.geoip ?? {})
    .filter(([, f]) => f)
    .map(([name, f]) => `,\n    (name = ${capnpString(name)}, data = embed ${capnpString(f!)})`)
    .join("");
  return `# Generated by parrot-cdn (src/node/workerd-config.ts): do not edit, it is rewritten at every start.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "edge", worker = .edgeWorker),
${storeServices}${storeRead}${control}${configDir}${fnServices}${fnInternet}    (name = "origin-net", network = (allow = ${allow}, tlsOptions = (trustBrowserCas = true))),
  ],
  sockets = [
    (name = "http", ${address}${socketKind}, service = "edge"),${fnSocket}
  ],
);

const edgeWorker :Workerd.Worker = (
  modules = [(name = "edge.js", esModule = embed ${capnpString(files.edge)})],
  compatibilityDate = ${capnpString(input.compatibilityDate)},
  compatibilityFlags = ${flags},
  bindings = [
    (name = "CDN_CONFIG", text = ${capnpString(input.configText)}),${input.configDir ? '\n    (name = "CONFIG_DIR", service = "config-dir"),' : ""}
    (name = "PRIVACY_KEY", fromEnvironment = ${capnpString(PRIVACY_KEY_ENV)}),
    (name = "STORE", service = "store"),
    (name = "STORE_DISK", service = "store-read")${remote ? ',\n    (name = "STORE_LOCKS", json = "true")' : ""}${controlBindings}${geo}${fnBindings}
  ],
  globalOutbound = "origin-net",
  cacheApiOutbound = "store",
);
${remote ? "" : "\n" + storeWorkerText(input)}`;
}

function storeWorkerText(input: Pick<WorkerdEdgeConfigInput, "compatibilityDate" | "files" | "store">): string {
  return `const storeWorker :Workerd.Worker = (
  modules = [(name = "store.js", esModule = embed ${capnpString(input.files.store)})],
  compatibilityDate = ${capnpString(input.compatibilityDate)},
  bindings = [
    (name = "DISK", service = "store-disk"),
    (name = "STORE", json = ${capnpString(JSON.stringify(input.store))}),
    (name = "STORE_INDEX", json = embed ${capnpString(input.files.index)}),
  ],
);
`;
}

/**
 * The store process of a several-process edge box: the store worker over the disk service, listening only on
 * `address` (a unix socket in the store's run directory, or loopback), which the edge processes' configs name.
 */
export function workerdStoreConfig(
  input: Pick<WorkerdEdgeConfigInput, "compatibilityDate" | "files" | "store" | "storeDir"> & { address: string },
): string {
  return `# Generated by parrot-cdn (src/node/workerd-config.ts): do not edit, it is rewritten at every start.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "store", worker = .storeWorker),
    (name = "store-disk", disk = (path = ${capnpString(input.storeDir)}, writable = true)),
  ],
  sockets = [
    (name = "store", address = ${capnpString(input.address)}, http = (), service = "store"),
  ],
);

${storeWorkerText(input)}`;
}
