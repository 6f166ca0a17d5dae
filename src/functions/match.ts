/** Which function (if any) runs a request: the first `[[functions]]` entry whose hosts and path prefix match. */
import type { FunctionConfig } from "../config/functions-schema.ts";

/** Whether `host` (lower case, no port) is one of `names` (`*` = any, `*.example.org` = any name under it). */
export function hostMatches(names: readonly string[], host: string): boolean {
  return names.some((n) => n === "*" || n === host || (n.startsWith("*.") && host.endsWith(n.slice(1)) && host.length > n.length - 1));
}

/** The function for a request's host (as in the URL: no port) and path, or undefined. */
export function functionFor<F extends Pick<FunctionConfig, "hosts" | "path">>(functions: readonly F[], host: string, path: string): F | undefined {
  const h = host.toLowerCase().replace(/\.$/, "");
  return functions.find((f) => path.startsWith(f.path) && hostMatches(f.hosts, h));
}
