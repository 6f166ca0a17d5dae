/**
 * OCSP stapling: a certificate that names an OCSP responder (here `openssl ocsp` answering for a test CA) gets a
 * fresh response fetched by the front door and stapled by HAProxy (seen with `openssl s_client -status`); one that
 * names none (a local CA's, pebble's, Let's Encrypt's since 2025) gets nothing stapled, and the log says why.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run, sleep, startEdgeBox, type EdgeBox } from "../support/frontdoor.ts";
import { ScriptedOrigin } from "../support/scripted-origin.ts";
import { freePort, waitListening } from "../support/ports.ts";

const origin = new ScriptedOrigin();
let box: EdgeBox;
let responder: ChildProcess;


async function openssl(args: string[]) {
  const r = await run("openssl", args);
  if (r.code !== 0) throw new Error(`openssl ${args[0]}: ${r.err}`);
}

beforeAll(async () => {
  origin.set("/", { headers: { "content-type": "text/plain" }, body: "ok\n" });
  const dir = mkdtempSync(join(tmpdir(), "parrot-fd-ocsp-"));
  const ocspPort = await freePort();
  // A CA, and a leaf naming the CA's OCSP responder.
  await openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30", "-subj", "/CN=OCSP test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    "-keyout", join(dir, "ca.key"), "-out", join(dir, "ca.pem")]);
  await openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=o.fd.test",
    "-keyout", join(dir, "leaf.key"), "-out", join(dir, "leaf.csr")]);
  writeFileSync(join(dir, "ext.cnf"), `subjectAltName=DNS:o.fd.test\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:${ocspPort}\nextendedKeyUsage=serverAuth\n`);
  await openssl(["x509", "-req", "-in", join(dir, "leaf.csr"), "-CA", join(dir, "ca.pem"), "-CAkey", join(dir, "ca.key"), "-set_serial", "0x5A5A0001",
    "-days", "10", "-extfile", join(dir, "ext.cnf"), "-out", join(dir, "leaf.pem")]);
  const expiry = (await run("openssl", ["x509", "-in", join(dir, "leaf.pem"), "-noout", "-enddate"])).out.trim().replace("notAfter=", "");
  const d = new Date(expiry);
  const yymmdd = d.toISOString().replace(/[-:T]/g, "").slice(2, 14) + "Z";
  writeFileSync(join(dir, "index.txt"), `V\t${yymmdd}\t\t5A5A0001\tunknown\t/CN=o.fd.test\n`);
  writeFileSync(join(dir, "chain.pem"), (await run("cat", [join(dir, "leaf.pem"), join(dir, "ca.pem")])).out);
  responder = spawn("openssl", ["ocsp", "-index", join(dir, "index.txt"), "-port", String(ocspPort), "-rsigner", join(dir, "ca.pem"),
    "-rkey", join(dir, "ca.key"), "-CA", join(dir, "ca.pem"), "-ndays", "1"], { stdio: "ignore" });
  await waitListening(ocspPort);
  box = await startEdgeBox(
    `
[frontdoor]
cert_dir = "{dir}/certs"
[[sites]]
names = ["o.fd.test"]
certificate = "files"
cert_file = "{dir}/chain.pem"
key_file = "{dir}/leaf.key"
[[sites]]
names = ["l.fd.test"]
certificate = "local"
`,
    { origin: origin.handle, dir },
  );
}, 120_000);

afterAll(async () => {
  await box?.stop();
  if (box) rmSync(box.dir, { recursive: true, force: true });
  responder?.kill();
});

describe("OCSP stapling", () => {
  it("staples the responder's answer for a certificate that names one", async () => {
    let status = "";
    for (const deadline = Date.now() + 20_000; Date.now() < deadline && !/Cert Status: good/.test(status); ) {
      const r = await run("openssl", ["s_client", "-connect", `127.0.0.1:${box.httpsPort}`, "-servername", "o.fd.test", "-status"], 5_000, "");
      status = r.out;
      if (!/Cert Status: good/.test(status)) await sleep(250);
    }
    expect(status).toMatch(/OCSP Response Status: successful/);
    expect(status).toMatch(/Cert Status: good/);
    expect(box.events().find((e) => e.event === "ocsp" && e.site === "o.fd.test")).toMatchObject({ stapled: true });
  });

  it("staples nothing for a certificate without a responder, and says so", async () => {
    const status = (await run("openssl", ["s_client", "-connect", `127.0.0.1:${box.httpsPort}`, "-servername", "l.fd.test", "-status"], 20_000, "")).out;
    expect(status).toMatch(/OCSP response: no response sent/);
    expect(box.events().find((e) => e.event === "ocsp" && e.site === "l.fd.test")).toMatchObject({
      stapled: false,
      reason: "the certificate names no OCSP responder",
    });
  });
});
