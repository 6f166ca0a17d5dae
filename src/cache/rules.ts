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

/**
 * The first rule matching the request, or undefined. Paths match as the origin will resolve them (resolvedPath):
 * `/static/..%2faccount` is `/account`, so a rule for `/static/**` cannot make an account page cacheable.
 */
export function findRule(rules: Rule[], method: string, host: string, path: string): Rule | undefined {
  if (!rules.length) return undefined;
  const hostname = host.toLowerCase().replace(/:\d+$/, "");
  const resolved = resolvedPath(path);
  return rules.find(
    (r) =>
      (!r.methods || r.methods.includes(method)) &&
      (!r.hosts || r.hosts.some((h) => h.toLowerCase() === hostname)) &&
      globToRegExp(r.path).test(resolved),
  );
}

/**
 * A URL path as origins resolve it: percent-decoded (until it stops changing, at most 3 times), backslashes read as
 * slashes, `;parameters` dropped from segments, `.` and `..` segments applied and repeated slashes collapsed.
 */
export function resolvedPath(path: string): string {
  let p = path;
  for (let i = 0; i < 3 && p.includes("%"); i++) {
    let next: string;
    try {
      next = decodeURIComponent(p);
    } catch {
      next = p.replace(/%(2f|5c|2e|3b)/gi, (m) => decodeURIComponent(m)); // malformed elsewhere: the separators still count
    }
    if (next === p) break;
    p = next;
  }
  if (!/[\\;]|\/\.|\/\//.test(p)) return p; // nothing to resolve (the common case)
  const out: string[] = [];
  const segments = p.replace(/\\/g, "/").split("/");
  for (const raw of segments) {
    const seg = raw.split(";")[0]!;
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  const last = segments[segments.length - 1]!.split(";")[0];
  return "/" + out.join("/") + (out.length && (last === "" || last === "." || last === "..") ? "/" : "");
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
