/**
 * Schema of `[[functions]]` in cdn.toml: a site's own Worker (an ES module, `export default { fetch }`) run by
 * every edge box in front of its cache, for requests whose Host is one of `hosts` and whose path starts with `path`.
 * The first function that matches a request runs it; what the function's `fetch()` may reach, its limits and what
 * happens when it fails are set here too (docs/functions.md).
 */
import { z } from "zod";

/** A Host header's name (no port), lower case; `*` = any host. */
const hostName = z
  .string()
  .max(253)
  .regex(/^(\*|(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)$/, 'a host name such as www.example.org, *.example.org, or "*" for every host')
  .transform((s) => s.toLowerCase());
/** A binding's name as a Worker sees it on `env`. */
const bindingName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "letters, digits and '_', not starting with a digit");

export const FunctionSchema = z
  .object({
    /** Names the function in `npm run fn`, logs, metrics and its files. */
    id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "lower-case letters, digits, '_' and '-' (at most 63)"),
    /** The Host names it serves (as [[sites]] names them; `*.example.org`; `"*"` for every host). */
    hosts: z.array(hostName).min(1).max(100),
    /** Only requests whose path starts with this prefix. */
    path: z.string().regex(/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/, 'a path prefix such as "/" or "/api/"').default("/"),
    /**
     * The Worker's source (JavaScript or TypeScript, relative to cdn.toml): bundled with esbuild at start and on
     * reload, unless `npm run fn -- deploy` published a version (then the current version runs).
     */
    module: z.string().min(1),
    /** The Worker's compatibility date (not newer than the pinned workerd), and flags. */
    compatibility_date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "a date such as 2026-11-01").default("2026-11-01"),
    compatibility_flags: z.array(z.string().regex(/^[a-z0-9_]+$/, "a workerd compatibility flag")).default([]),
    /** Text bindings (`env.NAME`). */
    vars: z.record(bindingName, z.string()).default({}),
    /** Secret text bindings from a file of `NAME=value` lines (wrangler's `.dev.vars` format), relative to cdn.toml. */
    secrets_file: z.string().min(1).optional(),
    /**
     * Hosts the function's own `fetch()` may reach directly (public addresses only; `*.example.org` allowed). A fetch
     * to one of `hosts` goes through this box's cache; any other host is refused.
     */
    allow_hosts: z.array(hostName).default([]),
    /** When the function throws, runs out of time or its process is down: serve as if there were no function ("cache"), or 503. */
    on_error: z.enum(["cache", "503"]).default("503"),
    /**
     * The watchdog's budget: a function process that spends this much CPU time without getting back to its event loop
     * (one request's JavaScript running on) is killed and started again.
     */
    cpu_ms: z.number().int().min(10).max(60_000).default(500),
    /** Wall-clock bound of one request in the function (its subrequests included), then on_error. */
    timeout_ms: z.number().int().min(100).max(600_000).default(30_000),
    /** V8 heap bound of the function's process (--max-old-space-size); above it the process dies and is started again. */
    memory_mb: z.number().int().min(16).max(4096).default(128),
  })
  .strict();

export const FunctionsTables = {
  functions: z
    .array(FunctionSchema)
    .default([])
    .superRefine((list, ctx) => {
      const seen = new Set<string>();
      list.forEach((f, i) => {
        if (seen.has(f.id)) ctx.addIssue({ code: "custom", message: `id "${f.id}" is used by another function`, path: [i, "id"] });
        seen.add(f.id);
      });
    }),
};

export type FunctionConfig = z.infer<typeof FunctionSchema>;
