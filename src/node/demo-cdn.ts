/**
 * The whole CDN on this machine, as `npm start` runs it from the embedded default cdn.toml: the demo origin, one
 * edge per [[edges]] entry with a loopback url (127.0.0.2, .3, .4 on one port; with [[sites]], each behind its front
 * door, HTTPS with this run's local CA), a JetStream nats-server when installed, and the DNS node — then the seed's
 * "how to test the CDN" checks, adapted to it. Ctrl-C stops everything.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join, resolve } from "node:path";
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";
import { demoOrigin } from "../demo-origin/origin.ts";
import { HEALTH_PATH } from "../contracts/well-known.ts";
import { ROOT, startNodeScript, type Running } from "./children.ts";
import { loadConfigFile } from "./config-file.ts";
import { dnsHost, placeLocalEdges, urlHost } from "./demo-edges.ts";
import { installed, leaveOutMissingEngines } from "./engines.ts";
import { stopWithNpm } from "./npm-parent.ts";
import { serveFetch } from "./serve-fetch.ts";
import { startDemoRedirector, type DemoRedirector } from "./demo-mirrors.ts";
import { appendFileSync } from "node:fs";
import { startLocalNats } from "../control/nats-server.ts";
import { parseConfig } from "../config/config.ts";
import { demoSite, ensureLocalCertificates, hasFrontDoor } from "../frontdoor/frontdoor.ts";


/** The name of the shield `npm start` runs in front of the demo origin. */
export const DEMO_SHIELD = "shield-local";

/** What `npm start` was given (scripts/start.ts parses it). */
export interface DemoCdnOptions {
  config: string;
  port: string;
  "https-port": string;
  "http3-port"?: string;
  "origin-port": string;
  "dns-port": string;
  "doh-port": string;
  /** The mirror redirector in front of the demo mirrors (docs/redirector.md). */
  "redirector-port": string;
  "state-dir": string;
  /** Addresses for the local [[edges]], in order (comma-separated). */
  "edge-hosts"?: string;
  "dns-host": string;
}

/** Runs everything until SIGINT/SIGTERM (or a child stops). */
export async function runDemoCdn(values: DemoCdnOptions): Promise<void> {
  const file = loadConfigFile(values.config!);
  // The addresses asked for are checked before anything starts.
  const interfaces = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address));
  let dnsAddress: string;
  try {
    dnsAddress = dnsHost(values["dns-host"], interfaces);
    placeLocalEdges(structuredClone(parseToml(file.text).edges ?? []) as Array<Record<string, unknown>>, { port: values.port, edgeHosts: values["edge-hosts"], interfaces });
  } catch (err) {
    console.error(`start: ${(err as Error).message}`);
    process.exit(2);
  }
  const stateDir = resolve(values["state-dir"]!);
  mkdirSync(stateDir, { recursive: true });
  const children: Running[] = [];
  let redirector: DemoRedirector | undefined;
  let stopping = false;
  async function stop(code = 0) {
    if (stopping) return;
    stopping = true;
    await Promise.allSettled([...children.map((c) => c.stop()), origin?.close(), redirector?.close()]);
    await nats?.server.stop();
    process.exit(code);
  }
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
  stopWithNpm((npm) => {
    console.error(`start: npm (pid ${npm}), which ran this, has exited; stopping everything`);
    void stop();
  });

  const origin = await serveFetch(demoOrigin, { port: Number(values["origin-port"]) }).catch((err: NodeJS.ErrnoException) => {
    console.error(
      err.code === "EADDRINUSE"
        ? `start: port ${values["origin-port"]} on 127.0.0.1 is in use (another npm start?): stop it, or pass --origin-port N`
        : `start: the demo origin cannot listen: ${err.message}`,
    );
    process.exit(2);
  });
  console.log(`demo origin  ${origin.url}`);

  // The effective config: the demo origin, the chosen port on every loopback edge, an admin token for this run.
  const raw = parseToml(file.text) as {
    edge?: Record<string, unknown>;
    admin?: Record<string, unknown>;
    edges?: Array<Record<string, unknown>>;
    control?: { servers: string[] };
    frontdoor?: Record<string, unknown>;
    sites?: Array<Record<string, unknown>>;
    anycast?: Record<string, unknown>;
  };
  raw.edge = { ...raw.edge, origin: origin.url };
  // The effective config is written elsewhere: the functions' files stay where the file names them.
  const functions = (raw as { functions?: Array<Record<string, unknown>> }).functions ?? [];
  for (const f of functions) for (const key of ["module", "secrets_file"]) if (typeof f[key] === "string") f[key] = resolve(file.dir, f[key]);
  delete raw.edge.origins;
  raw.admin = { ...raw.admin, token: (raw.admin?.token as string | undefined) ?? randomBytes(18).toString("base64url") };
  // The control plane: the file's [control], else a JetStream server of our own when nats-server is installed.
  const nats = raw.control ? undefined : await startLocalNats(join(stateDir, "nats"));
  if (nats) raw.control = nats.control;
  console.log(
    raw.control
      ? `control plane NATS JetStream ${raw.control.servers.join(", ")} (purges and drains are durable messages)`
      : "control plane direct fan-out to each edge (apt-get install nats-server for the JetStream control plane)",
  );
  const local = placeLocalEdges((raw.edges ??= []), { port: values.port, edgeHosts: values["edge-hosts"], interfaces });
  // HTTPS through each edge's front door: the file's [[sites]], or the demo site www.<zone> with this run's local CA.
  raw.sites ??= [demoSite(file.config.dns?.zone ?? "geo.example.org")];
  // HTTP/3 next to the HTTPS port (Caddy binds TCP there too, so not on it), unless the file says where.
  const httpsPort = Number(values["https-port"]);
  const http3Port = values["http3-port"] !== undefined ? Number(values["http3-port"]) : httpsPort === 0 ? 0 : httpsPort + 1;
  raw.frontdoor = { http3_port: http3Port, ...raw.frontdoor, cert_dir: join(stateDir, "certs") };
  for (const note of leaveOutMissingEngines(raw, (command) => installed(command))) console.log(note);
  // The tiered cache: one shield in front of the demo origin that the edges fill from (Cache-Status shows both hops),
  // unless the file names its own shields. It runs the same config under its own name (a box that is its own shield
  // fills from the origin), without the front door, and listens on 127.0.0.1 at the edges' port.
  const shield = raw.edge.shields ? undefined : { name: DEMO_SHIELD, host: "127.0.0.1", url: `http://127.0.0.1:${values.port}` };
  if (shield) raw.edge.shields = [{ name: shield.name, url: shield.url }];
  const effective = join(stateDir, "cdn.toml");
  const effectiveText = `# Written by npm start from ${file.path}; rewritten at every start.\n${stringifyToml(raw)}`;
  writeFileSync(effective, effectiveText, { mode: 0o600 });
  // The local CA and the sites' certificates, made once before the edges share them.
  const effectiveConfig = parseConfig(effectiveText, effective);
  const site = effectiveConfig.sites.find((s) => s.certificate === "local")?.names.find((n) => !n.startsWith("*."));
  const localCa = hasFrontDoor(effectiveConfig) ? await ensureLocalCertificates(effectiveConfig) : undefined;
  if (!local.length) {
    console.error(`${file.path}: no [[edges]] with a url on an address of this machine (http://127.0.0.x:port) to run here`);
    await stop(2);
  }

  try {
    if (shield) {
      const shieldConfig = join(stateDir, "shield.toml");
      const { sites: _sites, frontdoor: _frontdoor, anycast: _anycast, ...rest } = raw;
      writeFileSync(shieldConfig, `# Written by npm start: the demo's shield.\n${stringifyToml({ ...rest, edge: { ...raw.edge, name: shield.name } })}`, { mode: 0o600 });
      const box = await startNodeScript(
        "scripts/edge.ts",
        ["--config", shieldConfig, "--host", shield.host, "--port", values.port!, "--store", join(stateDir, shield.name)],
        /edge ready: (\S+)/,
        60_000,
        join(stateDir, `${shield.name}.log`),
      );
      children.push(box);
      // With the control plane, edges take a shield's answers only once it says how far it applied the purge
      // stream: wait (bounded) until its agent has caught up, so the first fills already come through it.
      for (let tries = 0; raw.control && tries < 300; tries++) {
        const state = await fetch(`${box.match[1]}${HEALTH_PATH}`).then((r) => r.headers.get("cdn-control")) // app.ts CONTROL_HEADER.catch(() => null);
        if (state === "current") break;
        await new Promise((r) => setTimeout(r, 100));
      }
      console.log(`shield       ${box.match[1]}  ${shield.name} (the edges fill from it; it fills from the origin)`);
    }
    const edges = await Promise.all(
      local.map((e) =>
        startNodeScript(
          "scripts/edge.ts",
          ["--config", effective, "--name", e.name, "--host", e.host, "--port", values.port!, "--https-port", values["https-port"]!, "--store", join(stateDir, e.name)],
          /edge ready: (\S+)/,
          60_000,
          join(stateDir, `${e.name}.log`),
        ),
      ),
    );
    children.push(...edges);
    edges.forEach((e, i) => console.log(`edge         ${e.match[1]}  ${local[i]!.name}`));
    const dns = await startNodeScript(
      "scripts/dns.ts",
      ["--config", effective, "--host", dnsAddress, "--port", values["doh-port"]!, "--dns-port", values["dns-port"]!],
      /dns http (\S+)/,
      60_000,
      join(stateDir, "dns.log"),
    );
    children.push(dns);
    const udp = /dns udp\+tcp (\S+):(\d+)/.exec(dns.output())!;
    console.log(`dns node     udp+tcp ${udp[1]}:${udp[2]}, DoH http://${dns.match[1]}/dns-query`);
    // Wait for the DNS node's first probe round, so the director's answers do not change under the printed checks.
    const status = `http://${dns.match[1]}/status.json`;
    for (let tries = 0; tries < 100; tries++) {
      const edges = await fetch(status)
        .then((r) => r.json() as Promise<{ edges: { name: string; state: string; detail?: string }[] }>)
        .then((j) => j.edges)
        .catch(() => undefined);
      if (edges && edges.every((e) => e.state !== "unknown")) {
        for (const e of edges.filter((e) => e.state !== "up")) console.log(`note: edge ${e.name} is ${e.state} (${e.detail ?? ""})`);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    // The mirror redirector in front of two demo mirrors, the first edge as the CDN (in this process).
    const redirectorLog = join(stateDir, "redirector.log");
    redirector = await startDemoRedirector({
      raw,
      originUrl: origin.url,
      cdnUrl: `http://${urlHost(local[0]!.host)}:${values.port}`,
      stateDir,
      port: Number(values["redirector-port"]),
      log: (line) => appendFileSync(redirectorLog, `${line}\n`),
    }).catch((err: NodeJS.ErrnoException) => {
      throw new Error(
        err.code === "EADDRINUSE"
          ? `start: port ${values["redirector-port"]} on 127.0.0.1 is in use (another npm start?): stop it, or pass --redirector-port N`
          : `start: the mirror redirector did not start: ${err.message}`,
      );
    });
    for (const m of redirector.mirrors) console.log(`demo mirror  ${m.url}  ${m.name} (${m.note})`);
    const R = redirector.host.url;
    console.log(`redirector   ${R}`);
    const at = `@${udp[1]!.replace(/^\[(.*)\]$/, "$1")} -p ${udp[2]}`;
    const director = `${file.config.dns?.director.name ?? "director"}.${file.config.dns?.zone ?? "geo.example.org"}`;
    console.log(`
Test how the CDN sees your requests (from here you are 127.0.0.1; +subnet asks as another client would):
  dig -t txt ${at} ${director} | grep country
  dig -t txt ${at} +subnet=185.178.92.254/32 ${director} | grep country

Test how the CDN resolves for you:
  dig ${at} +short ${director} A ${director} AAAA

Test how the CDN caches content, at the edge the director gives you (run it twice: MISS, then HIT):
  curl -sI http://$(dig ${at} +short ${director} A | head -1):${values.port}/img/logo.png | grep -i X-Cache-Status

${
    localCa && site
      ? `Test HTTPS with HTTP/2 through the front door (HAProxy), trusting this run's local CA:
  curl --cacert ${localCa} --resolve ${site}:${values["https-port"]}:${urlHost(local[0]!.host)} -sI https://${site}:${values["https-port"]}/ | head -1
${
          raw.frontdoor?.http3 !== false
            ? `
HTTP/3 (QUIC, through Caddy) is announced in Alt-Svc; Debian's curl cannot speak it, a browser switches to it:
  curl --cacert ${localCa} --resolve ${site}:${values["https-port"]}:${urlHost(local[0]!.host)} -sI https://${site}:${values["https-port"]}/ | grep -i alt-svc
`
            : ""
        }
`
      : ""
  }${
    shield
      ? `See both tiers in Cache-Status: the edge filled from the shield, which filled from the origin (RFC 9211):
  curl -sI http://${urlHost(local[0]!.host)}:${values.port}/css/site.css | grep -i '^cache-status'

`
      : ""
  }${
    functions.length
      ? `See an edge function (examples/functions/hello.ts, [[functions]] in cdn.toml) answer for your country:
  curl http://${urlHost(local[0]!.host)}:${values.port}/hello/

`
      : ""
  }Watch a resumed download come from the cache (a 300 MiB image, stored by the edge in slices; docs/mirrors.md):
  E=http://${urlHost(local[0]!.host)}:${values.port}; ISO=parrot-demo-1.0-amd64.iso
  curl -so /dev/null -w '%{http_code} %{size_download}\\n' $E/iso/$ISO                 # a first download fills the cache
  curl -s -r 0-104857599 -o $ISO $E/iso/$ISO                                            # a client stopped at 100 MiB
  curl -s -C - -o $ISO -D - $E/iso/$ISO | grep -iE '^(content-range|x-cache-status)'   # resumed: HIT
  curl -s $E/iso/SHA256SUMS | sha256sum -c
apt through the CDN: deb [trusted=yes] http://${urlHost(local[0]!.host)}:${values.port}/debian parrot main

Send downloads to the nearest mirror that has the file (docs/redirector.md): a redirect, then the mirror list:
  curl -sI ${R}/iso/parrot-demo-1.0-amd64.iso | grep -iE '^(location|link|repr-digest)'
  curl -s '${R}/iso/parrot-demo-1.0-amd64.iso?mirrorlist=json'
apt through the mirrors: deb [trusted=yes] mirror+${R}/debian/mirrors.txt parrot main

Admin token for this run (purge, metrics, drain), in ${effective}:
  export PARROT_ADMIN_TOKEN=${raw.admin.token}
  npm run purge -- --config ${effective} --tag img   # the logo, at every edge
  curl -H "Authorization: Bearer $PARROT_ADMIN_TOKEN" http://${urlHost(local[0]!.host)}:${values.port}/.well-known/cdn/metrics
Logs and state: ${stateDir}
Ctrl-C stops everything.`);
    for (const c of children) {
      c.proc.once("exit", (code) => {
        if (!stopping) {
          console.error(`a child process stopped (${code}); stopping everything`);
          void stop(1);
        }
      });
    }
  } catch (err) {
    console.error((err as Error).message);
    await stop(1);
  }
}
