/** The site's module as the harness imports it (bundled separately; see harness.ts). */
declare const fn: { fetch?: (request: Request, env: unknown, ctx: ExecutionContext) => Response | Promise<Response> };
export default fn;
