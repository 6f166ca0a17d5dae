/** Cache keys: the primary key from host, path and query (per rule), the secondary key from Vary'd request headers. */
import { codingsKey } from "./encoding.ts";

/** host + path + query, the query kept, sorted or dropped as the rule says. Scheme is not part of the key. */
export function primaryKey(url: URL, query: "keep" | "sort" | "drop" = "keep"): string {
  let search = url.search;
  if (query === "drop") search = "";
  else if (query === "sort" && search) {
    const params = [...url.searchParams].sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
    search = params.length ? "?" + new URLSearchParams(params).toString() : "";
  }
  return url.host.toLowerCase() + url.pathname + search;
}

/** Field names a response varies on (lower case, several Vary lines merged); `["*"]` when it varies on anything. */
export function varyFields(vary: string | null): string[] {
  if (!vary) return [];
  const fields = [...new Set(vary.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean))];
  return fields.includes("*") ? ["*"] : fields.sort();
}

/** Fields whose values are case-insensitive (RFC 9110 §12.5): variants differing only in case are the same. */
const CASE_INSENSITIVE = new Set(["accept", "accept-encoding", "accept-language", "accept-charset"]);

/** A request header's value normalised for variant matching: whitespace folded, case folded where it means nothing. */
export function normaliseFieldValue(value: string | null, field = ""): string {
  if (value === null) return "";
  const folded = value.replace(/\s*([,;=])\s*/g, "$1").replace(/\s+/g, " ").trim();
  return CASE_INSENSITIVE.has(field) ? folded.toLowerCase() : folded;
}

/**
 * The (name, normalised value) pairs of `request` that pick a variant. Accept-Encoding is reduced to the codings a
 * cache stores (encoding.ts): the many headers browsers send make a handful of variants, not one each.
 */
export function variantOf(fields: string[], headers: Headers): [string, string][] {
  return fields.map((f) => [f, f === "accept-encoding" ? codingsKey(headers.get(f)) : normaliseFieldValue(headers.get(f), f)]);
}

/** The storage key of one variant under a Vary marker. */
export function variantKey(primary: string, markerId: string, variant: [string, string][]): string {
  return `${primary}#v=${markerId};${variant.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&")}`;
}
