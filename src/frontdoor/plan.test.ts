import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../config/config.ts";
import { challengeRecordName, planFrontDoor, siteId } from "./plan.ts";

const EDGE = '[edge]\norigin = "http://127.0.0.1:8080"\n';
const ACME = `
[admin]
token = "0123456789abcdef-token"
[dns]
zone = "geo.example.org"
nameservers = ["ns1.example.org"]
hostmaster = "hostmaster.example.org"
[acme]
directory = "https://127.0.0.1:14000/dir"
dns_nodes = [ { url = "http://127.0.0.1:8053", dns = "127.0.0.1:5353" } ]
`;

function problems(text: string): string[] {
  try {
    planFrontDoor(parseConfig(text, "bad.toml"), "bad.toml");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error("expected the config to be refused");
}

describe("challenge record names", () => {
  it("publishes a name inside the zone at its own _acme-challenge name", () => {
    expect(challengeRecordName("www.geo.example.org", "geo.example.org")).toBe("_acme-challenge.www.geo.example.org");
    expect(challengeRecordName("geo.example.org", "geo.example.org")).toBe("_acme-challenge.geo.example.org");
  });

  it("validates a wildcard at its base name", () => {
    expect(challengeRecordName("*.cdn.geo.example.org", "geo.example.org")).toBe("_acme-challenge.cdn.geo.example.org");
  });

  it("publishes a name outside the zone at the alias the operator's CNAME points to", () => {
    expect(challengeRecordName("www.parrot.example", "geo.example.org", "parrot-www.acme.geo.example.org")).toBe(
      "_acme-challenge.parrot-www.acme.geo.example.org",
    );
    expect(challengeRecordName("*.parrot.example", "geo.example.org", "acme.geo.example.org")).toBe("_acme-challenge.acme.geo.example.org");
  });

  it("refuses a name outside the zone without an alias, and an alias outside the zone", () => {
    expect(challengeRecordName("www.parrot.example", "geo.example.org")).toEqual({ error: expect.stringContaining("set challenge_alias") });
    expect(challengeRecordName("www.parrot.example", "geo.example.org", "acme.example.net")).toEqual({
      error: expect.stringContaining("acme.example.net is outside the CDN zone geo.example.org"),
    });
    // A suffix that is not a label boundary is not inside the zone.
    expect(challengeRecordName("www.badgeo.example.org", "geo.example.org")).toHaveProperty("error");
  });
});

describe("the front door plan", () => {
  it("derives ids, challenges, HSTS and limit names from [[sites]]", () => {
    const plan = planFrontDoor(
      parseConfig(`${EDGE}${ACME}
[[sites]]
names = ["www.geo.example.org", "Geo.Example.org"]
http_paths = ["/dists/", "/pool/"]
hsts = { max_age = 31536000, include_subdomains = true }
limits = [ { paths = ["/api/"], requests = 20, seconds = 10, key = "prefix" }, { requests = 100 } ]

[[sites]]
names = ["*.parrot.example"]
challenge_alias = "parrot.acme.geo.example.org."
http = "serve"

[[sites]]
names = ["files.example.net"]
certificate = "files"
cert_file = "a.crt"
key_file = "a.key"
`),
    );
    expect(plan.sites.map((s) => s.id)).toEqual(["www.geo.example.org", "wildcard.parrot.example", "files.example.net"]);
    expect(plan.sites[0]!.names).toEqual(["www.geo.example.org", "geo.example.org"]);
    expect(plan.sites[0]!.challenges).toEqual([
      { name: "www.geo.example.org", record: "_acme-challenge.www.geo.example.org" },
      { name: "geo.example.org", record: "_acme-challenge.geo.example.org" },
    ]);
    expect(plan.sites[0]!.hsts).toBe("max-age=31536000; includeSubDomains");
    expect(plan.sites[0]!.limits).toEqual([
      { name: "www.geo.example.org-0", site: "www.geo.example.org", paths: ["/api/"], requests: 20, seconds: 10, key: "prefix" },
      { name: "www.geo.example.org-1", site: "www.geo.example.org", paths: ["/"], requests: 100, seconds: 1, key: "address" },
    ]);
    expect(plan.sites[1]!.challenges).toEqual([{ name: "*.parrot.example", record: "_acme-challenge.parrot.acme.geo.example.org" }]);
    expect(plan.sites[2]!.challenges).toEqual([]);
    expect(plan.acme).toMatchObject({ zone: "geo.example.org", token: "0123456789abcdef-token", issue: true });
    expect(plan.door).toMatchObject({ http_port: 80, https_port: 443, cert_dir: ".parrot/certs" });
  });

  it("normalizes the allow list", () => {
    const plan = planFrontDoor(parseConfig(`${EDGE}[frontdoor]\nallow = ["10.1.2.3/8", "::1"]\n[[sites]]\nnames = ["a.example"]\ncertificate = "local"\n`));
    expect(plan.allow).toEqual(["10.0.0.0/8", "::1/128"]);
  });

  it("names the field and the reason when tables do not fit together", () => {
    expect(problems(`${EDGE}[[sites]]\nnames = ["www.example.org"]\n`)).toEqual([
      'sites[0].certificate: "acme" needs an [acme] table (the CA and the DNS nodes)',
    ]);
    expect(problems(`${EDGE}${ACME}[[sites]]\nnames = ["www.example.com"]\n`)[0]).toMatch(
      /^sites\[0\]\.names\[0\]: www\.example\.com is outside the CDN zone geo\.example\.org: set challenge_alias/,
    );
    expect(problems(`${EDGE}${ACME}[[sites]]\nnames = ["www.example.com"]\nchallenge_alias = "acme.example.net"\n`)[0]).toMatch(
      /^sites\[0\]\.challenge_alias: acme\.example\.net is outside the CDN zone/,
    );
    expect(
      problems(`${EDGE}[[sites]]\nnames = ["a.example", "b.example"]\ncertificate = "local"\n[[sites]]\nnames = ["b.example"]\ncertificate = "local"\n`),
    ).toEqual(["sites[1].names[0]: b.example is already served by sites[0]"]);
    expect(
      problems(`${EDGE}[acme]\ndns_nodes = [ { url = "http://127.0.0.1:1", dns = "127.0.0.1:53" } ]\n`),
    ).toEqual([
      "acme.zone: set it (or [dns] zone): the zone the DNS nodes serve",
      "acme.token: set it (or [admin] token): the DNS nodes' admin token",
    ]);
    expect(problems(`${EDGE}[frontdoor]\nhttp_port = 8443\nhttps_port = 8443\n`)).toEqual(["frontdoor.https_port: must differ from http_port"]);
  });

  it("refuses bad [[sites]] fields by name (the schema)", () => {
    const bad = (text: string) => {
      try {
        parseConfig(text, "bad.toml");
      } catch (err) {
        return (err as ConfigError).problems;
      }
      return [];
    };
    expect(bad(`${EDGE}[[sites]]\nnames = ["www example"]\n`)).toEqual([
      "sites[0].names[0]: a DNS name such as www.example.org (or *.example.org)",
    ]);
    expect(bad(`${EDGE}[[sites]]\nnames = ["a.example"]\ncertificate = "files"\n`)).toEqual([
      'sites[0].cert_file: certificate = "files" needs cert_file and key_file',
    ]);
    expect(bad(`${EDGE}[[sites]]\nnames = ["a.example"]\nhttp = "upgrade"\n`)[0]).toMatch(/^sites\[0\]\.http: Invalid option/);
    expect(bad(`${EDGE}[[sites]]\nnames = ["a.example"]\nhttp_paths = ["dists/"]\n`)).toEqual([
      'sites[0].http_paths[0]: a path prefix such as "/dists/"',
    ]);
    expect(bad(`${EDGE}[[sites]]\nnames = ["a.example"]\nlimits = [ { requests = 0 } ]\n`)[0]).toMatch(/^sites\[0\]\.limits\[0\]\.requests: /);
    expect(bad(`${EDGE}[[sites]]\nnames = ["a.example"]\nhsts = { max_age = 600, preload = true }\n`)).toEqual([
      "sites[0].hsts.preload: preload needs include_subdomains = true and max_age >= 31536000 (the preload list's rules)",
    ]);
    expect(bad(`${EDGE}[frontdoor]\nallow = ["10.0.0.0/40"]\n`)).toEqual(["frontdoor.allow[0]: not an IP address or CIDR"]);
    expect(bad(`${EDGE}[frontdoor]\nban = { after = 3, sconds = 5 }\n`)[0]).toMatch(/^frontdoor\.ban: Unrecognized key: "sconds"/);
    expect(bad(`${EDGE}[acme]\nfetch_from = "https://issuer.example.org"\ndns_nodes = [ { url = "http://x", dns = "127.0.0.1:53" } ]\n`)).toEqual([
      "acme.fetch_from: a box that issues (issue = true) does not fetch: set issue = false on the boxes that fetch",
    ]);
    expect(bad(`${EDGE}[acme]\ndns_nodes = [ { url = "http://x", dns = "ns1:53" } ]\n`)).toEqual([
      'acme.dns_nodes[0].dns: an address and port such as "192.0.2.53:53"',
    ]);
  });

  it("a fleet's [acme] issuer: that box issues, the others do not, and it needs [control]", () => {
    const control = `[control]\nservers = ["nats://127.0.0.1:4222"]\n`;
    const site = `[[sites]]\nnames = ["www.geo.example.org"]\n`;
    const as = (name: string, extra = control) => planFrontDoor(parseConfig(`[edge]\nname = "${name}"\norigin = "http://127.0.0.1:8080"\n${extra}${ACME}issuer = "eu-lon"\n${site}`));
    expect(as("eu-lon").acme).toMatchObject({ issue: true, issuer: "eu-lon" });
    expect(as("na-sea").acme).toMatchObject({ issue: false });
    expect(problems(`[edge]\nname = "eu-lon"\norigin = "http://127.0.0.1:8080"\n${ACME}issuer = "eu-lon"\n${site}`)).toEqual([
      "acme.issuer: needs [control]: the certificates travel through the control plane",
    ]);
    expect(problems(`${EDGE}${control}${ACME}issuer = "eu-lon"\nissue = false\nfetch_from = "https://x.example.org"\n${site}`)).toEqual([
      "acme.fetch_from: a fleet with an issuer ([acme] issuer) takes certificates from the control plane: remove fetch_from",
    ]);
  });

  it("spells out a wildcard in a default id", () => {
    expect(siteId({ names: ["*.example.org"] })).toBe("wildcard.example.org");
    expect(siteId({ names: ["*.example.org"], id: "star" })).toBe("star");
  });
});
