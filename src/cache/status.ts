/** X-Cache-Status (nginx's seven values) and its RFC 9211 Cache-Status member. */

export type XCacheStatus = "MISS" | "BYPASS" | "EXPIRED" | "STALE" | "UPDATING" | "REVALIDATED" | "HIT";

/** The parameters of this cache's Cache-Status member (RFC 9211 §2). */
export interface CacheStatusParams {
  hit?: boolean;
  fwd?: "uri-miss" | "vary-miss" | "miss" | "request" | "stale" | "partial" | "bypass" | "method";
  fwdStatus?: number;
  stored?: boolean;
  collapsed?: boolean;
  ttl?: number;
  detail?: string;
}

/** One list member, e.g. `edge-lon; hit; ttl=42`. */
export function cacheStatusMember(cacheName: string, p: CacheStatusParams): string {
  const parts = [sfToken(cacheName)];
  if (p.hit) parts.push("hit");
  if (p.fwd) parts.push(`fwd=${p.fwd}`);
  if (p.fwdStatus !== undefined) parts.push(`fwd-status=${p.fwdStatus}`);
  if (p.ttl !== undefined) parts.push(`ttl=${Math.trunc(p.ttl)}`);
  if (p.stored) parts.push("stored");
  if (p.collapsed) parts.push("collapsed");
  if (p.detail) parts.push(`detail=${sfToken(p.detail)}`);
  return parts.join("; ");
}

/** Appends this cache's member to an upstream Cache-Status value (never replaces it). */
export function appendCacheStatus(upstream: string | null, member: string): string {
  return upstream && upstream.trim() ? `${upstream}, ${member}` : member;
}

/** A structured-field token when the name is one, else a quoted string. */
function sfToken(s: string): string {
  return /^[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*$/.test(s) ? s : `"${s.replace(/["\\]/g, "\\$&")}"`;
}
