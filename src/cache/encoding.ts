/**
 * Content codings (RFC 9110 §8.4, §12.5.3): what a client's Accept-Encoding allows, reduced to the coding the edge
 * uses for it — br, else gzip, else none — so `Vary: Accept-Encoding` keeps at most three variants instead of one per
 * distinct header a browser sends. The origin is asked with that same coding only, so whatever it answers suits
 * every client of the variant.
 */

/** The codings the edge stores variants of, in the order it prefers them. */
export const CODINGS = ["br", "zstd", "gzip", "deflate"] as const;
export type Coding = (typeof CODINGS)[number];

/**
 * The stored codings a client accepts (q > 0, `*` counts for those it does not name, `x-gzip` is gzip), in
 * CODINGS order; empty means identity only. The variant key of Accept-Encoding.
 */
export function acceptedCodings(header: string | null): Coding[] {
  if (!header) return [];
  const q = new Map<string, number>();
  for (const part of header.toLowerCase().split(",")) {
    const [name, ...params] = part.split(";").map((s) => s.trim());
    if (!name) continue;
    const qv = params.find((p) => p.startsWith("q="));
    const value = qv === undefined ? 1 : Number(qv.slice(2));
    q.set(name === "x-gzip" ? "gzip" : name, Number.isFinite(value) ? value : 0);
  }
  const star = q.get("*");
  return CODINGS.filter((c) => (q.get(c) ?? star ?? 0) > 0);
}

/** Accept-Encoding as a variant key and as what the origin is asked with: `br`, `gzip`, or "" for identity. */
export function codingsKey(header: string | null): string {
  return chooseCoding(acceptedCodings(header)) ?? "";
}

/** The coding the edge compresses with for a client that accepts `accepted` (the edge makes br and gzip). */
export function chooseCoding(accepted: Coding[]): "br" | "gzip" | undefined {
  if (accepted.includes("br")) return "br";
  if (accepted.includes("gzip")) return "gzip";
  return undefined;
}

/** Whether a Content-Type (parameters ignored) matches one of the patterns: `text/*`, `application/json`, … */
export function typeMatches(contentType: string | null, patterns: string[]): boolean {
  if (!contentType) return false;
  const type = contentType.split(";")[0]!.trim().toLowerCase();
  return patterns.some((p) => (p.endsWith("/*") ? type.startsWith(p.slice(0, -1)) : type === p));
}
