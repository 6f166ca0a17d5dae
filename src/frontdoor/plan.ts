/**
 * The front door's plan: what cdn.toml's `[[sites]]`, `[frontdoor]` and `[acme]` mean together, checked across
 * tables (a name served twice, an ACME name the DNS nodes cannot answer for, a missing token) with the same
 * field-named errors as the schema. Pure: the terminator's config, the issuer and the tests all start from it.
 */
import { ConfigError, type CdnConfig } from "../config/config.ts";
import type { AcmeConfig, FrontDoorConfig, SiteConfig } from "../config/sites-schema.ts";
import { formatIp, parseCidr } from "../net/ip.ts";

export interface LimitPlan {
  /** Unique across the box: metrics label, log field, HAProxy table suffix. */
  name: string;
  site: string;
  paths: string[];
  requests: number;
  seconds: number;
  key: "address" | "prefix";
}

/** One DNS-01 challenge: the certificate name and the TXT record name the issuer publishes for it. */
export interface ChallengePlan {
  name: string;
  record: string;
}

export interface SitePlan {
  id: string;
  names: string[];
  certificate: SiteConfig["certificate"];
  certFile?: string;
  keyFile?: string;
  http: SiteConfig["http"];
  httpPaths: string[];
  /** The Strict-Transport-Security value, when the site sends one. */
  hsts?: string;
  limits: LimitPlan[];
  /** certificate = "acme": where each name's challenge is published. */
  challenges: ChallengePlan[];
}

export interface AcmePlan extends Omit<AcmeConfig, "zone" | "token"> {
  zone: string;
  token: string;
}

export interface FrontDoorPlan {
  sites: SitePlan[];
  door: FrontDoorConfig;
  /** The allow list as normalized CIDRs. */
  allow: string[];
  acme?: AcmePlan;
}

/** Whether a config turns the front door on: it names at least one site. */
export function hasFrontDoor(config: CdnConfig): boolean {
  return config.sites.length > 0;
}

/** The site's id: as configured, else its first name (a wildcard's `*` spelled out). */
export function siteId(site: Pick<SiteConfig, "id" | "names">): string {
  return site.id ?? site.names[0]!.replace(/^\*\./, "wildcard.");
}

/** Whether `name` is `zone` or below it. */
export function inZone(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}

/**
 * The TXT record name for a certificate name's DNS-01 challenge (RFC 8555 §8.4; a wildcard is validated at its
 * base name): `_acme-challenge.<alias>` when the site has a challenge alias (the operator's
 * `_acme-challenge.<name>` CNAME points there), else `_acme-challenge.<name>`, which must be inside the zone.
 * Returns an error text when neither is inside the zone.
 */
export function challengeRecordName(name: string, zone: string, alias?: string): string | { error: string } {
  const base = name.replace(/^\*\./, "");
  if (alias !== undefined) {
    if (!inZone(alias, zone)) return { error: `${alias} is outside the CDN zone ${zone}: the DNS nodes cannot publish there` };
    return `_acme-challenge.${alias}`;
  }
  if (!inZone(base, zone)) {
    return {
      error: `${name} is outside the CDN zone ${zone}: set challenge_alias to a name inside it and CNAME _acme-challenge.${base} to _acme-challenge.<alias>`,
    };
  }
  return `_acme-challenge.${base}`;
}

/** The Strict-Transport-Security header value of an `hsts` table. */
export function hstsValue(hsts: NonNullable<SiteConfig["hsts"]>): string {
  return [`max-age=${hsts.max_age}`, hsts.include_subdomains ? "includeSubDomains" : "", hsts.preload ? "preload" : ""]
    .filter(Boolean)
    .join("; ");
}

/** Builds the plan; throws ConfigError naming each field that cannot work with the others. */
export function planFrontDoor(config: CdnConfig, source = "cdn.toml"): FrontDoorPlan {
  const problems: string[] = [];
  const door = config.frontdoor;
  const usesAcme = config.sites.some((s) => s.certificate === "acme");
  let acme: AcmePlan | undefined;
  if (config.acme) {
    const zone = config.acme.zone ?? config.dns?.zone?.toLowerCase().replace(/\.$/, "");
    const token = config.acme.token ?? config.admin.token;
    if (!zone) problems.push("acme.zone: set it (or [dns] zone): the zone the DNS nodes serve");
    if (!token) problems.push("acme.token: set it (or [admin] token): the DNS nodes' admin token");
    if (config.acme.fetch_from && !config.admin.token) problems.push("acme.fetch_from: set [admin] token: the issuing box wants it");
    if (config.acme.issuer && !config.control) problems.push("acme.issuer: needs [control]: the certificates travel through the control plane");
    // A fleet names its issuer: that box issues, the others install what it publishes (src/control/fleet-certs.ts).
    const issue = config.acme.issuer ? config.acme.issuer === config.edge?.name : config.acme.issue;
    if (zone && token) acme = { ...config.acme, zone, token, issue };
  } else if (usesAcme) {
    const i = config.sites.findIndex((s) => s.certificate === "acme");
    problems.push(`sites[${i}].certificate: "acme" needs an [acme] table (the CA and the DNS nodes)`);
  }

  const seenNames = new Map<string, number>();
  const seenIds = new Map<string, number>();
  const seenLimits = new Set<string>();
  const sites: SitePlan[] = config.sites.map((site, i) => {
    const id = siteId(site);
    if (seenIds.has(id)) problems.push(`sites[${i}].id: "${id}" is already the id of sites[${seenIds.get(id)}]`);
    seenIds.set(id, i);
    site.names.forEach((name, j) => {
      const other = seenNames.get(name);
      if (other !== undefined) problems.push(`sites[${i}].names[${j}]: ${name} is already served by sites[${other}]`);
      seenNames.set(name, i);
    });
    const challenges: ChallengePlan[] = [];
    if (site.certificate === "acme" && acme) {
      site.names.forEach((name, j) => {
        const record = challengeRecordName(name, acme!.zone, site.challenge_alias);
        if (typeof record === "string") challenges.push({ name, record });
        else problems.push(`sites[${i}].${site.challenge_alias !== undefined ? "challenge_alias" : `names[${j}]`}: ${record.error}`);
      });
    }
    const limits = site.limits.map((limit, j): LimitPlan => {
      const name = limit.name ?? `${id}-${j}`;
      if (seenLimits.has(name)) problems.push(`sites[${i}].limits[${j}].name: "${name}" is used twice`);
      seenLimits.add(name);
      return { name, site: id, paths: limit.paths, requests: limit.requests, seconds: limit.seconds, key: limit.key };
    });
    return {
      id,
      names: site.names,
      certificate: site.certificate,
      certFile: site.cert_file,
      keyFile: site.key_file,
      http: site.http,
      httpPaths: site.http_paths,
      hsts: site.hsts && site.hsts.max_age > 0 ? hstsValue(site.hsts) : undefined,
      limits,
      challenges,
    };
  });
  if (door.https_port !== 0 && door.https_port === door.http_port) {
    problems.push("frontdoor.https_port: must differ from http_port");
  }
  if (problems.length) throw new ConfigError(source, problems);
  const allow = door.allow.map((c) => {
    const cidr = parseCidr(c)!;
    return `${formatIp(cidr.bytes)}/${cidr.prefix}`;
  });
  return { sites, door, allow, acme };
}
