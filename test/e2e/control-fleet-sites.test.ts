/**
 * Sites and certificates through the fleet, with real parts: nats-server with per-box nkeys (eu-lon the issuer),
 * three edge boxes on bare workerd behind their HAProxy front doors (`[control] fleet = true`), pebble as the ACME CA
 * validating DNS-01 through a DNS node of the project, and a test CA for the "files" sites:
 *   a push adding a `[[sites]]` entry gives it HTTPS on every box without a restart while a long download through an
 *   existing site continues; a push removing it stops serving it; a site no box could serve is never stored, and one
 *   whose files a box cannot read is refused by the canary;
 *   the issuer's certificate (and a forced renewal) reaches every box through the bucket, the key sealed to each
 *   box's own curve key: the served serial changes on every box; one box cannot open another's copy; a box's
 *   credentials cannot publish a certificate or another box's key.
 */
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromCurveSeed } from "@nats-io/nkeys";
import { certKeys, CertRecordSchema, openCertificateKey } from "../../src/control/cert-seal.ts";
import { FleetKv } from "../../src/control/fleet-kv.ts";
import { parseRecord } from "../../src/control/fleet.ts";
import { connectOnce } from "../../src/control/nats.ts";
import { inspectPair } from "../../src/frontdoor/cert-store.ts";
import { ensureLocalCa, issueLocalCertificate } from "../../src/frontdoor/local-ca.ts";
import { startControlCdn, TOKEN, until, type ControlCdn } from "../support/control-cdn.ts";
import { downloadStarted, run } from "../support/frontdoor.ts";
import { startKeyedNats, type KeyedNats } from "../support/nats.ts";
import { startAcmeCa, type AcmeCa } from "../support/pebble.ts";
import { pattern } from "../support/scripted-origin.ts";

const EDGES = ["eu-lon", "na-sea", "as-pek"];
const ISSUER = "eu-lon";
const ACME_SITE = "c.geo.example.org";
const BIG = 24 * 1024 * 1024;
let dir: string;
let nats: KeyedNats;
let acme: AcmeCa;
let cdn: ControlCdn;
let testCa: string;
/** The shared file as the operator wrote it (sites a and c): what every push starts from. */
let common: string;

/** A "files" site signed by the test CA (absolute paths: every box reads the same files). */
async function filesSite(name: string): Promise<string> {
  const pair = await issueLocalCertificate(await ensureLocalCa(join(dir, "test-ca")), [name], 30);
  writeFileSync(join(dir, `${name}.crt`), pair.chainPem);
  writeFileSync(join(dir, `${name}.key`), pair.keyPem, { mode: 0o600 });
  return `\n[[sites]]\nnames = ["${name}"]\ncertificate = "files"\ncert_file = "${join(dir, `${name}.crt`)}"\nkey_file = "${join(dir, `${name}.key`)}"\nhttp = "serve"\n`;
}

/** curl over HTTPS to `box` as `name` (SNI and Host), trusting only `ca`. */
function curlSite(box: string, name: string, path: string, ca: string, extra: string[] = []) {
  return run("curl", ["-sS", "--cacert", ca, "--resolve", `${name}:${cdn.httpsPort}:${cdn.host(box)}`, ...extra, `https://${name}:${cdn.httpsPort}${path}`]);
}

/** The serial `box` presents for `name`. */
async function servedSerial(box: string, name: string): Promise<string> {
  const r = await run("openssl", ["s_client", "-connect", `${cdn.host(box)}:${cdn.httpsPort}`, "-servername", name, "-showcerts"], 20_000, "");
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.out)?.[0];
  return pem ? new X509Certificate(pem).serialNumber.toLowerCase() : `none (${r.err.trim().slice(0, 120)})`;
}

const push = (name: string, text: string, window = "1") => {
  const path = join(cdn.dir, `${name}.toml`);
  writeFileSync(path, text);
  return cdn.fleet(["push", path, "--canary", ISSUER, "--window", window, "--timeout", "60"]);
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "parrot-fleet-sites-"));
  nats = await startKeyedNats(dir, [...EDGES.flatMap((e) => ["--box", e]), "--issuer", ISSUER], { edges: EDGES });
  acme = await startAcmeCa(TOKEN);
  testCa = join(dir, "test-ca", "local-ca.pem");
  const siteA = await filesSite("a.example.net");
  cdn = await startControlCdn({
    edges: EDGES,
    ...nats.cdnAuth(EDGES),
    control: "catch_up_timeout_ms = 10000\nfleet = true",
    ownDirs: true,
    https: true,
    tables: `
[frontdoor]
cert_dir = "certs"
poll_seconds = 1

${acme.acmeToml(`issuer = "${ISSUER}"`)}${siteA}
[[sites]]
names = ["${ACME_SITE}"]
http = "serve"
`,
  });
  common = readFileSync(cdn.config, "utf8");
  cdn.origin.set("/page", { headers: { "cache-control": "max-age=600" }, body: "page\n" });
  cdn.origin.set("/big", { headers: { "content-type": "application/octet-stream", "cache-control": "max-age=600" }, size: BIG });
}, 240_000);

afterAll(async () => {
  await cdn?.stop();
  await acme?.stop();
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("[[sites]] through the fleet, live", () => {
  it("a pushed site gets HTTPS on every box without a restart while a long download continues; removed, it is no longer served", async () => {
    for (const e of EDGES) expect((await curlSite(e, "a.example.net", "/page", testCa)).out).toBe("page\n");
    for (const e of EDGES) expect((await curlSite(e, "b.example.net", "/page", testCa)).code).not.toBe(0);
    const pids = EDGES.map((e) => cdn.running(e)!.proc.pid);
    // Through the canary, which reloads first; stored before, so the download below goes at curl's pace (~16 s).
    await curlSite(ISSUER, "a.example.net", "/big", testCa, ["-o", "/dev/null"]);
    const file = join(dir, "big.bin");
    let downloading = true;
    const download = curlSite(ISSUER, "a.example.net", "/big", testCa, ["--limit-rate", "1500K", "-o", file, "-w", "%{http_code} %{size_download}"]).finally(() => (downloading = false));
    await downloadStarted(file);

    const pushed = Date.now();
    const added = await push("with-b", common + (await filesSite("b.example.net")));
    console.log(`push adding a site → every box applied it (HAProxy reloaded, canary window 1 s included): ${Date.now() - pushed} ms`);
    expect(added.stderr).toBe("");
    expect(added.code).toBe(0);
    expect(downloading).toBe(true); // every box reloaded HAProxy while the download ran
    for (const e of EDGES) {
      const r = await curlSite(e, "b.example.net", "/page", testCa, ["-w", " %{http_code}"]);
      expect(r.err).toBe("");
      expect(r.out).toBe("page\n 200");
    }
    expect((await download).out).toBe(`200 ${BIG}`);
    expect(createHash("sha256").update(readFileSync(file)).digest("hex")).toBe(createHash("sha256").update(pattern(BIG)).digest("hex"));
    // No box restarted: the same processes, each started once.
    expect(EDGES.map((e) => cdn.running(e)!.proc.pid)).toEqual(pids);
    for (const e of EDGES) expect(cdn.running(e)!.output().match(/edge ready/g)).toHaveLength(1);

    const removed = await push("without-b", common);
    expect(removed.code).toBe(0);
    for (const e of EDGES) {
      const r = await curlSite(e, "b.example.net", "/page", testCa);
      expect(r.code).toBe(60); // the default certificate (a.example.net's) does not name b.example.net
      expect(await servedSerial(e, "b.example.net")).toBe(await servedSerial(e, "a.example.net"));
    }
  }, 180_000);

  it("a pushed site no box could serve is refused before it is stored, and one a box cannot serve by that box", async () => {
    const before = (await cdn.fleet(["status"])).stdout.match(/^rollout: version (\d+)/m)?.[1];
    const twice = await push("served-twice", common + `\n[[sites]]\nnames = ["a.example.net"]\ncertificate = "local"\n`, "0");
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/box eu-lon: sites\[2\]\.names\[0\]: a\.example\.net is already served by sites\[0\]/);
    expect((await cdn.fleet(["status"])).stdout.match(/^rollout: version (\d+)/m)?.[1]).toBe(before);
    // Files the boxes cannot read: valid text, refused by the canary (nothing changed there), rolled back.
    const unreadable = await push("unreadable", common + `\n[[sites]]\nnames = ["d.example.net"]\ncertificate = "files"\ncert_file = "${join(dir, "none.crt")}"\nkey_file = "${join(dir, "none.key")}"\n`, "0");
    expect(unreadable.code).toBe(1);
    expect(unreadable.stderr).toMatch(/canary eu-lon refused version \d+: .*sites d\.example\.net: .*none\.crt/);
    for (const e of EDGES) expect((await curlSite(e, "a.example.net", "/page", testCa)).out).toBe("page\n");
  }, 90_000);
});

describe("certificates through the fleet", () => {
  const serials = () => Promise.all(EDGES.map((e) => servedSerial(e, ACME_SITE)));

  it("the issuer's certificate and a forced renewal reach every box", async () => {
    const first = await until(
      "every box serves the issuer's certificate",
      async () => {
        const s = await serials();
        const issued = (await curlSite(ISSUER, ACME_SITE, "/page", acme.rootPath)).code === 0;
        return issued && s.every((x) => x === s[0]) ? s[0] : undefined;
      },
      120_000,
    );
    const renew = await fetch(`http://${cdn.host(ISSUER)}:${cdn.port}/.well-known/cdn/frontdoor/renew`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ site: ACME_SITE }),
    });
    expect(renew.status).toBe(200);
    const renewed = ((await renew.json()) as { serial: string }).serial;
    expect(renewed).not.toBe(first);
    const started = Date.now();
    await until("every box serves the renewed certificate", async () => ((await serials()).every((s) => s === renewed) ? true : undefined), 60_000);
    console.log(`renewal installed on every box ${Date.now() - started} ms after the issuer answered`);
    for (const e of EDGES) {
      const r = await curlSite(e, ACME_SITE, "/page", acme.rootPath);
      expect(r.err).toBe("");
      expect(r.out).toBe("page\n");
    }
  }, 200_000);

  it("the bucket holds no plaintext key, a box cannot open another box's copy, and no box hands keys over HTTP", async () => {
    const overHttp = await fetch(`http://${cdn.host(ISSUER)}:${cdn.port}/.well-known/cdn/frontdoor/certificate/${ACME_SITE}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(overHttp.status).toBe(404);
    expect(await overHttp.text()).not.toMatch(/PRIVATE KEY/);
    const nc = await connectOnce(nats.controlAs("operator"), "test operator");
    try {
      const kv = await FleetKv.open(nc, nats.controlAs("operator"));
      const entry = await kv.get(certKeys.cert(ACME_SITE));
      expect(entry!.value).not.toMatch(/PRIVATE KEY/);
      const record = parseRecord(CertRecordSchema, "cert", entry!.value);
      expect(Object.keys(record.keys).sort()).toEqual([...EDGES].sort());
      const seed = (box: string) => fromCurveSeed(new TextEncoder().encode(readFileSync(join(cdn.dir, "store", box, ".run", "fleet-cert.xk"), "utf8").trim()));
      const keyPem = openCertificateKey(record, "na-sea", seed("na-sea"));
      expect(inspectPair({ chainPem: record.chain, keyPem }).serial).toBe(record.serial);
      expect(() => openCertificateKey(record, "na-sea", seed("as-pek"))).toThrow(/not to this box's key/);
      expect(seed("as-pek").open(Buffer.from(record.keys["na-sea"]!.sealed, "base64"), record.sender)).toBeNull();
    } finally {
      await nc.close();
    }
  });

  it("a box's credentials cannot publish a certificate or another box's key; the issuer's can publish certificates", async () => {
    const box = await connectOnce(nats.controlAs("na-sea"), "test as na-sea");
    const issuer = await connectOnce(nats.controlAs(ISSUER), "test as the issuer");
    try {
      const kv = await FleetKv.open(box, nats.controlAs("na-sea"));
      await expect(kv.put(certKeys.cert(ACME_SITE), "{}")).rejects.toThrow();
      await expect(kv.put(certKeys.cert("x.geo.example.org"), "{}")).rejects.toThrow();
      await expect(kv.put(certKeys.xkey("as-pek"), "{}")).rejects.toThrow();
      const own = await kv.get(certKeys.xkey("na-sea"));
      expect(await kv.put(certKeys.xkey("na-sea"), own!.value)).toBeGreaterThan(0);
      const issuerKv = await FleetKv.open(issuer, nats.controlAs(ISSUER));
      expect(await issuerKv.put(certKeys.cert("unserved.example.net"), "{}")).toBeGreaterThan(0);
    } finally {
      await box.close();
      await issuer.close();
    }
  }, 60_000);
});
