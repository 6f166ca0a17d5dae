/**
 * Where a function's own `fetch()` may go: its site's hosts through this box's cache engine (as a Worker's fetch()
 * goes through Cloudflare's cache), the hosts the config allows straight out (public addresses only), nothing else.
 */
import { hostMatches } from "./match.ts";

export type OutboundDecision = { to: "engine" } | { to: "internet" } | { to: "refused"; reason: string };

export function outboundDecision(url: URL, hosts: readonly string[], allowHosts: readonly string[]): OutboundDecision {
  if (url.protocol !== "http:" && url.protocol !== "https:") return { to: "refused", reason: `${url.protocol} is not fetched` };
  const host = url.hostname.toLowerCase().replace(/\.$/, "");
  // A site's own names go through the cache, never straight out ("*" functions: every host is theirs).
  if (hostMatches(hosts, host)) return { to: "engine" };
  if (hostMatches(allowHosts.filter((h) => h !== "*"), host)) return { to: "internet" };
  return { to: "refused", reason: `${host} is not one of this function's hosts or allow_hosts` };
}
