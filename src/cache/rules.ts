/** Operator rules from cdn.toml: the first rule whose path glob, methods and hosts match a request applies. */
import type { RequestCondition, Rule } from "../config/edge-schema.ts";

const globCache = new Map<string, RegExp>();

/** `*` matches within one path segment, `**` across segments, `?` one character; everything else literally. */
export function globToRegExp(glob: string): RegExp {
  let re = globCache.get(glob);
  if (re) return re;
  let src = "^";
  for (let i = 0; i < glob.length; ) {
    if (glob.startsWith("/**/", i)) (src += "(?:/|/.*/)"), (i += 4);
    else if (glob.startsWith("/**", i) && i + 3 === glob.length) (src += "(?:/.*)?"), (i += 3); // "/img/**" also matches "/img"
    else if (glob.startsWith("**", i)) (src += ".*"), (i += 2);
    else if (glob[i] === "*") (src += "[^/]*"), i++;
    else if (glob[i] === "?") (src += "[^/]"), i++;
    else (src += glob[i]!.replace(/[.+^${}()|[\]\\]/g, "\\$&")), i++;
  }
  re = new RegExp(src + "$");
  globCache.set(glob, re);
  return re;
}

/** The first rule matching the request, or undefined. */
export function findRule(rules: Rule[], method: string, host: string, path: string): Rule | undefined {
  const hostname = host.toLowerCase().replace(/:\d+$/, "");
  return rules.find(
    (r) =>
      (!r.methods || r.methods.includes(method)) &&
      (!r.hosts || r.hosts.some((h) => h.toLowerCase() === hostname)) &&
      globToRegExp(r.path).test(path),
  );
}

/** nginx's test for proxy_cache_bypass / proxy_no_cache: some named item is present and neither empty nor "0". */
export function conditionMatches(cond: RequestCondition | undefined, request: Request, url: URL): boolean {
  if (!cond) return false;
  const set = (v: string | null | undefined) => v !== null && v !== undefined && v !== "" && v !== "0";
  if (cond.headers.some((h) => set(request.headers.get(h)))) return true;
  if (cond.args.some((a) => set(url.searchParams.get(a)))) return true;
  if (cond.cookies.length) {
    const cookies = parseCookies(request.headers.get("cookie"));
    if (cond.cookies.some((c) => set(cookies.get(c)))) return true;
  }
  return false;
}

function parseCookies(header: string | null): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}
