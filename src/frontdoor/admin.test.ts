import { describe, expect, it } from "vitest";
import { frontDoorAdmin } from "./admin.ts";

const TOKEN = "0123456789abcdef-admin";
const status = [{ site: "www.example.org", source: "acme" as const, names: ["www.example.org"], placeholder: false, failures: 0 }];
const renewed: string[] = [];
const handler = (metricsPublic = false) =>
  frontDoorAdmin({
    admin: { token: TOKEN, metrics_public: metricsPublic },
    metrics: async () => "parrot_frontdoor_up 1\n",
    certificates: () => status,
    certificatePem: (site) => (site === "www.example.org" ? "-----BEGIN CERTIFICATE-----\n…" : undefined),
    renew: async (site) => {
      renewed.push(site);
      if (site !== "www.example.org") throw new Error("no");
      return { serial: "0a", notBefore: 0, notAfter: Date.UTC(2030, 0, 1), names: ["www.example.org"], issuer: "x", fingerprint256: "f" };
    },
  });
const req = (path: string, init: RequestInit & { token?: string } = {}) =>
  new Request(`http://edge/.well-known/cdn/frontdoor/${path}`, {
    ...init,
    headers: init.token ? { authorization: `Bearer ${init.token}` } : {},
  });

describe("the front door's operator endpoints", () => {
  it("want the admin token for metrics (unless public), certificates and renew", async () => {
    expect((await handler()(req("metrics"))).status).toBe(401);
    expect((await handler()(req("metrics", { token: "wrong-token-wrong-token" }))).status).toBe(401);
    expect(await (await handler()(req("metrics", { token: TOKEN }))).text()).toBe("parrot_frontdoor_up 1\n");
    expect((await handler(true)(req("metrics"))).status).toBe(200);
    expect((await handler(true)(req("certificates"))).status).toBe(401);
    expect((await handler()(req("renew", { method: "POST", body: '{"site":"www.example.org"}' }))).status).toBe(401);
    expect(renewed).toEqual([]);
  });

  it("list the certificates in service, and hand an ACME site's certificate to the boxes that fetch it", async () => {
    expect(await (await handler()(req("certificates", { token: TOKEN }))).json()).toEqual(status);
    expect((await handler(true)(req("certificate/www.example.org"))).status).toBe(401);
    const pem = await handler()(req("certificate/www.example.org", { token: TOKEN }));
    expect(await pem.text()).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(pem.headers.get("cache-control")).toBe("no-store");
    expect((await handler()(req("certificate/other.example.org", { token: TOKEN }))).status).toBe(404);
  });

  it("renew a named site, and answer bad requests with the reason", async () => {
    const ok = await handler()(req("renew", { method: "POST", token: TOKEN, body: '{"site":"www.example.org"}' }));
    expect(await ok.json()).toEqual({ site: "www.example.org", serial: "0a", not_after: "2030-01-01T00:00:00.000Z", names: ["www.example.org"] });
    const unknown = await handler()(req("renew", { method: "POST", token: TOKEN, body: '{"site":"other"}' }));
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: 'unknown site: "other"', sites: ["www.example.org"] });
    const bad = await handler()(req("renew", { method: "POST", token: TOKEN, body: "site=www" }));
    expect(bad.status).toBe(400);
    expect((await handler()(req("renew", { token: TOKEN }))).status).toBe(404); // GET is not renew
    expect(renewed).toEqual(["www.example.org"]);
  });
});
