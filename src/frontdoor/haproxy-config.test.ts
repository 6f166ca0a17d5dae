import { describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../config/config.ts";
import { crtList, haproxyConfig, type HaproxyConfigInput } from "./haproxy-config.ts";
import { planFrontDoor } from "./plan.ts";

const EDGE = '[edge]\norigin = "http://127.0.0.1:8080"\n';

function generate(toml: string, over: Partial<HaproxyConfigInput> = {}): string {
  return haproxyConfig({
    plan: planFrontDoor(parseConfig(EDGE + toml)),
    httpBind: "fd@3",
    httpsBind: "fd@4",
    httpsPort: 443,
    upstream: "127.0.0.1:41234",
    adminSocket: "/run/parrot/admin.sock",
    runtimeSocket: "/run/parrot/haproxy.sock",
    crtList: "/run/parrot/sites.crtlist",
    serverTimeoutMs: 60_000,
    ...over,
  });
}

const lines = (cfg: string) => cfg.split("\n").map((l) => l.trim());

describe("the terminator's config", () => {
  const basic = generate(`
[[sites]]
names = ["www.example.org", "*.cdn.example.org"]
certificate = "local"
http_paths = ["/dists/", "/pool/"]
hsts = { max_age = 31536000 }
[[sites]]
names = ["apt.example.org"]
certificate = "local"
http = "serve"
`);

  it("terminates TLS with every site's certificate by SNI, offering h2 and HTTP/1.1, and keeps plain HTTP", () => {
    expect(lines(basic)).toContain('bind fd@4 name https ssl crt-list "/run/parrot/sites.crtlist" alpn h2,http/1.1');
    expect(lines(basic)).toContain("bind fd@3 name http");
    expect(crtList([{ file: "/c/www.pem", names: ["www.example.org", "*.cdn.example.org"] }, { file: "/c/apt.pem", names: ["apt.example.org"] }])).toBe(
      "/c/www.pem [alpn h2,http/1.1] www.example.org *.cdn.example.org\n/c/apt.pem [alpn h2,http/1.1] apt.example.org\n",
    );
    expect(() => crtList([{ file: "/my certs/a.pem", names: ["a.example"] }])).toThrow(/white space/);
  });

  it("overwrites X-Forwarded-For with the connecting address and sets X-Forwarded-Proto from the listener", () => {
    expect(lines(basic)).toContain("http-request set-header X-Forwarded-For %[src]");
    expect(basic).not.toMatch(/option forwardfor|add-header X-Forwarded-For/i);
    expect(lines(basic)).toContain("http-request set-header X-Forwarded-Proto https if tls");
    expect(lines(basic)).toContain("http-request set-header X-Forwarded-Proto http if !tls");
  });

  it("passes bodies and Accept-Encoding untouched to the edge over loopback HTTP/1.1", () => {
    expect(basic).not.toMatch(/compression|accept-encoding/i);
    expect(lines(basic)).toContain("server edge 127.0.0.1:41234");
    expect(basic).not.toMatch(/server edge .*(ssl|proto h2)/);
  });

  it("redirects plain HTTP per site, except the site's http_paths and the CDN's own endpoints", () => {
    expect(lines(basic)).toContain("acl site_0 req.hdr(host),host_only -m str www.example.org");
    expect(lines(basic)).toContain("acl site_0 req.hdr(host),host_only -m reg ^[^.]+\\.cdn\\.example\\.org$");
    expect(lines(basic)).toContain(
      "http-request redirect location https://%[req.hdr(host),host_only]%[capture.req.uri] code 301 if !tls site_0 !cdn_path !{ path_beg /dists/ /pool/ }",
    );
    // A site that serves plain HTTP gets no redirect.
    expect(basic).not.toMatch(/redirect .* site_1/);
    // A non-standard HTTPS port is named in the Location.
    expect(generate('[[sites]]\nnames = ["a.example"]\ncertificate = "local"\n', { httpsPort: 8443 })).toContain(
      "redirect location https://%[req.hdr(host),host_only]:8443%[capture.req.uri] code 301 if !tls site_0 !cdn_path\n",
    );
  });

  it("sends HSTS only over TLS, only for the sites that ask for it", () => {
    expect(lines(basic)).toContain('http-request set-var(txn.hsts) str("max-age=31536000") if tls site_0');
    expect(basic).not.toMatch(/txn\.hsts\) .* site_1/);
    expect(lines(basic)).toContain("http-response set-header Strict-Transport-Security %[var(txn.hsts)] if { var(txn.hsts) -m found }");
  });

  it("routes the front door's own endpoints to its admin socket", () => {
    expect(lines(basic)).toContain("use_backend frontdoor if { path_beg /.well-known/cdn/frontdoor/ }");
    expect(lines(basic)).toContain('server admin "unix@/run/parrot/admin.sock"');
  });

  it("has no request-rate or ban tables when none are configured", () => {
    expect(basic).not.toMatch(/st_limit|st_strike|track-sc1|track-sc2/);
  });

  it("bounds every address's connections and every connection's requests by default, allow list or not", () => {
    expect(lines(basic)).toContain("tcp-request connection track-sc0 src table st_conn");
    expect(lines(basic)).toContain("tcp-request connection reject if { sc0_conn_cur gt 256 }");
    expect(lines(basic)).toContain("http-request set-var(sess.conn_reqs) int(0) if { date,sub(sess.conn_since) ge 10 }");
    expect(lines(basic)).toContain("http-request reject if { var(sess.conn_reqs) -m int gt 2000 }");
    // Counted before anything else answers, logged once per connection.
    const l = lines(basic);
    expect(l.indexOf("http-request reject if { var(sess.conn_reqs) -m int gt 2000 }")).toBeLessThan(l.findIndex((x) => x.startsWith("http-request redirect")));
    expect(l).toContain("http-request set-var(txn.action) str(flooding) if { var(sess.conn_reqs) -m int gt 2000 } !{ var(sess.flood_logged) -m found }");
    const off = lines(generate('[frontdoor]\nconnections = 0\nconnection_requests = 0\n[[sites]]\nnames = ["a.example"]\ncertificate = "local"\n'));
    expect(off.join("\n")).not.toMatch(/st_conn|conn_reqs/);
  });

  it("gives the TLS handshake handshake_timeout_ms (HAProxy 2.6: timeout client), idle connections client_timeout_ms", () => {
    expect(lines(basic)).toContain("timeout client 5s");
    expect(lines(basic)).toContain("timeout http-keep-alive 60s");
    expect(lines(basic)).toContain("timeout http-request 10s");
    expect(lines(generate('[frontdoor]\nhandshake_timeout_ms = 3000\n[[sites]]\nnames = ["a.example"]\ncertificate = "local"\n'))).toContain("timeout client 3s");
  });

  describe("limits", () => {
    const limited = generate(`
[frontdoor]
allow = ["10.0.0.0/8", "2001:db8::/32"]
connections = 20
connections_key = "prefix"
prefix4 = 24
prefix6 = 48
ban = { after = 5, within = 60, seconds = 600 }
[[sites]]
names = ["www.example.org"]
certificate = "local"
limits = [ { name = "api", paths = ["/api/", "/search"], requests = 10, seconds = 5 }, { requests = 100, key = "prefix" } ]
`);
    const l = lines(limited);

    it("lets the allow list through before anything is counted", () => {
      expect(l).toContain("acl allowed src 10.0.0.0/8 2001:db8::/32");
      const accept = l.indexOf("tcp-request connection accept if allowed");
      expect(accept).toBeGreaterThan(0);
      expect(accept).toBeLessThan(l.findIndex((x) => x.startsWith("tcp-request connection track-sc")));
      expect(l.filter((x) => x.startsWith("http-request set-var(txn.limit) ")).every((x) => x.endsWith("!allowed"))).toBe(true);
    });

    it("closes connections beyond the concurrent limit per prefix, counting a strike", () => {
      expect(l).toContain("stick-table type ipv6 size 1m expire 60s store conn_cur");
      expect(l).toContain("tcp-request connection track-sc0 src,ipmask(24,48) table st_conn");
      expect(l).toContain("tcp-request connection sc-inc-gpc0(2) if { sc0_conn_cur gt 20 }");
      expect(l).toContain("tcp-request connection reject if { sc0_conn_cur gt 20 }");
    });

    it("answers 429 past a site's request rate, the first matching limit counting", () => {
      expect(l).toContain("stick-table type ipv6 size 1m expire 5s store http_req_rate(5s)");
      expect(l).toContain("http-request set-var(txn.limit) str(api) if site_0 { path_beg /api/ /search } !{ var(txn.limit) -m found } !allowed");
      expect(l).toContain("http-request track-sc1 src table st_limit_0 if { var(txn.limit) -m str api }");
      expect(l).toContain("http-request track-sc1 src,ipmask(24,48) table st_limit_1 if { var(txn.limit) -m str www.example.org-1 }");
      expect(l).toContain(
        "http-request set-var(txn.action) str(limited) if !{ var(txn.action) -m found } { var(txn.limit_max) -m found } { sc1_http_req_rate,sub(txn.limit_max) gt 0 }",
      );
      expect(l.find((x) => x.startsWith("http-request deny deny_status 429"))).toMatch(/retry-after %\[var\(txn\.limit_window\)\]/);
    });

    it("bans after repeated excess for a fixed time, closing the client's connections", () => {
      expect(l).toContain("stick-table type ipv6 size 1m expire 600s store gpc0,gpc0_rate(60s),gpt0");
      expect(l).toContain("tcp-request connection set-var(sess.ban_at) src,table_gpt0(st_strike)");
      expect(l).toContain("tcp-request connection reject if { var(sess.ban_at) -m int gt 0 } { date,sub(sess.ban_at) lt 600 }");
      expect(l).toContain("tcp-request session sc-set-gpt0(2) date if { sc2_gpc0_rate ge 5 }");
      expect(l).toContain("http-request sc-inc-gpc0(2) if { var(txn.action) -m str limited }");
      expect(l).toContain("http-request reject if { var(txn.action) -m str banned }");
      // One log line per banned connection, not one per request.
      expect(l).toContain("http-request set-log-level silent if { var(txn.action) -m str banned } { var(sess.ban_logged) -m found }");
      expect(l.indexOf("http-request set-var(sess.ban_logged) bool(true) if { var(txn.action) -m str banned }")).toBeLessThan(
        l.indexOf("http-request reject if { var(txn.action) -m str banned }"),
      );
    });

    it("logs only limited and banned requests, as JSON", () => {
      expect(l).toContain("http-request set-log-level silent unless { var(txn.action) -m found }");
      expect(l.find((x) => x.startsWith("log-format"))).toMatch(/^log-format '\{"client":"%ci",.*"action":"%\[var\(txn\.action\)\]"/);
    });
  });
});

describe("the terminator's config with HTTP/3 (Caddy in front of an h3 frontend)", () => {
  const toml = `
[frontdoor]
allow = ["192.0.2.0/24"]
ban = { after = 3 }
[[sites]]
names = ["www.example.org"]
certificate = "local"
limits = [{ name = "pages", requests = 5, seconds = 10 }]
`;
  const withH3 = generate(toml, { h3: { socket: "/run/parrot/h3.sock", advertisedPort: 443 } });
  const h3 = lines(withH3.slice(withH3.indexOf("frontend h3"), withH3.indexOf("\nbackend edge")));

  it("takes Caddy's requests on a unix socket only the box's user opens, with the QUIC client as the source", () => {
    expect(h3).toContain('bind "unix@/run/parrot/h3.sock" name h3 mode 600');
    // Before any rule that reads the source: the allow list, the strike counter, the limits.
    const setSrc = h3.indexOf("http-request set-src hdr(x-forwarded-for)");
    expect(setSrc).toBeGreaterThan(0);
    expect(h3.findIndex((l) => l.startsWith("acl allowed src"))).toBeGreaterThan(setSrc);
    expect(h3.findIndex((l) => l.startsWith("http-request track-sc2 src table st_strike unless allowed"))).toBeGreaterThan(setSrc);
    expect(h3.findIndex((l) => l.startsWith("http-request track-sc1"))).toBeGreaterThan(setSrc);
  });

  it("runs the sites' request rules (limits, bans, what the edge is told) but no per-connection bound, and says TLS", () => {
    expect(h3).toContain("acl tls always_true");
    expect(h3.some((l) => l.includes("deny_status 429"))).toBe(true);
    expect(h3).toContain("http-request reject if { var(txn.action) -m str banned }");
    expect(h3).toContain("http-request set-header X-Forwarded-For %[src]");
    expect(h3).toContain("default_backend edge");
    expect(h3.some((l) => l.includes("sess.conn_reqs"))).toBe(false);
    expect(h3.some((l) => l.startsWith("tcp-request"))).toBe(false);
  });

  it("names the HTTP/3 port in Alt-Svc on HTTPS answers only, and only when HTTP/3 is on", () => {
    expect(lines(withH3)).toContain(`http-response set-header Alt-Svc "h3=\\":443\\"; ma=86400" if tls`);
    expect(generate(toml)).not.toContain("Alt-Svc");
    expect(generate(toml)).not.toContain("frontend h3");
  });

  it("is a configuration HAProxy accepts", async () => {
    const dir = mkdtempSync(join(tmpdir(), "parrot-h3cfg-"));
    try {
      const cfg = generate(toml, {
        h3: { socket: join(dir, "h3.sock"), advertisedPort: 443 },
        // haproxy -c binds nothing: any port will do.
        httpBind: "127.0.0.1:1",
        httpsBind: "127.0.0.1:2",
        adminSocket: join(dir, "admin.sock"),
        runtimeSocket: join(dir, "haproxy.sock"),
        crtList: join(dir, "sites.crtlist"),
      });
      writeFileSync(join(dir, "haproxy.cfg"), cfg);
      const run = (cmd: string, args: string[]) =>
        new Promise<{ code: number; out: string }>((done) => execFile(cmd, args, (err, stdout, stderr) => done({ code: err ? 1 : 0, out: stdout + stderr })));
      const pem = join(dir, "www.pem");
      await run("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", pem, "-out", join(dir, "c.pem"), "-days", "1", "-subj", "/CN=www.example.org"]);
      writeFileSync(pem, readFileSync(join(dir, "c.pem"), "utf8") + readFileSync(pem, "utf8"));
      writeFileSync(join(dir, "sites.crtlist"), crtList([{ file: pem, names: ["www.example.org"] }]));
      const { code, out } = await run("haproxy", ["-c", "-f", join(dir, "haproxy.cfg")]);
      expect(out).not.toMatch(/\[ALERT\]/);
      expect(code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
