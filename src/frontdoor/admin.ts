/**
 * The front door's own endpoints, reached through the terminator at /.well-known/cdn/frontdoor/ (HAProxy routes
 * them to a unix socket only this box's user can open). Same token rules as the edge's operator endpoints.
 *   GET  …/metrics        Prometheus text (the [admin] token, unless metrics_public)
 *   GET  …/certificates   every site's certificate in service, as JSON (token)
 *   POST …/renew          {"site": "<id>"}: issue or make the site's certificate again now (token)
 *   GET  …/certificate/<site>  an ACME site's certificate and key (PEM), for the boxes that fetch from this one (token)
 */
import { createServer, type Server } from "node:http";
import { chmodSync, rmSync } from "node:fs";
import type { AdminConfig } from "../config/admin-schema.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../metrics/registry.ts";
import { isAuthorized, unauthorized } from "../net/admin-auth.ts";
import { FRONTDOOR_PATH } from "./haproxy-config.ts";
import type { CertInfo } from "./cert-store.ts";
import type { CertificateStatus } from "./certificates.ts";

export interface FrontDoorAdminDeps {
  admin: AdminConfig;
  metrics: () => Promise<string>;
  certificates: () => CertificateStatus[];
  renew: (site: string) => Promise<CertInfo>;
  /** An ACME site's chain and key in service, or undefined. */
  certificatePem: (site: string) => string | undefined;
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body, null, 2) + "\n", { status, headers: { "content-type": "application/json", "cache-control": "no-store" } });

/** The endpoints as a fetch handler. */
export function frontDoorAdmin(deps: FrontDoorAdminDeps): (request: Request) => Promise<Response> {
  return async (request) => {
    const path = new URL(request.url).pathname.slice(FRONTDOOR_PATH.length);
    const authorized = () => isAuthorized(request, deps.admin.token);
    if (path === "metrics" && request.method === "GET") {
      if (!deps.admin.metrics_public && !(await authorized())) return unauthorized(Boolean(deps.admin.token));
      return new Response(await deps.metrics(), { headers: { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" } });
    }
    if (path === "certificates" && request.method === "GET") {
      if (!(await authorized())) return unauthorized(Boolean(deps.admin.token));
      return json(deps.certificates());
    }
    if (path.startsWith("certificate/") && request.method === "GET") {
      if (!(await authorized())) return unauthorized(Boolean(deps.admin.token));
      const pem = deps.certificatePem(path.slice("certificate/".length));
      if (!pem) return new Response("404 no ACME certificate in service for that site\n", { status: 404, headers: { "content-type": "text/plain" } });
      return new Response(pem, { headers: { "content-type": "application/x-pem-file", "cache-control": "no-store" } });
    }
    if (path === "renew" && request.method === "POST") {
      if (!(await authorized())) return unauthorized(Boolean(deps.admin.token));
      let site: unknown;
      try {
        site = ((await request.json()) as { site?: unknown }).site;
      } catch {
        return json({ error: 'the body must be JSON: {"site": "<site id>"}' }, 400);
      }
      if (typeof site !== "string" || !deps.certificates().some((c) => c.site === site)) {
        return json({ error: `unknown site: ${JSON.stringify(site)}`, sites: deps.certificates().map((c) => c.site) }, 404);
      }
      try {
        const info = await deps.renew(site);
        return json({ site, serial: info.serial, not_after: new Date(info.notAfter).toISOString(), names: info.names });
      } catch (err) {
        return json({ site, error: (err as Error).message }, 502);
      }
    }
    return new Response("404 not a front door endpoint\n", { status: 404, headers: { "content-type": "text/plain" } });
  };
}

/** Bodies the endpoints read are small JSON objects: anything larger is refused. */
const MAX_BODY = 64 * 1024;

/** Serves the endpoints on a unix socket (mode 0600). */
export function serveAdmin(socketPath: string, handler: (request: Request) => Promise<Response>): Promise<Server> {
  rmSync(socketPath, { force: true });
  const server = createServer(async (req, res) => {
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_BODY) return void res.writeHead(413, { "content-type": "text/plain" }).end("413 body too large\n");
        chunks.push(chunk);
      }
      const headers = new Headers();
      for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
      const hasBody = req.method !== "GET" && req.method !== "HEAD";
      const request = new Request(new URL(req.url ?? "/", "http://frontdoor"), { method: req.method, headers, body: hasBody ? Buffer.concat(chunks) : null });
      const response = await handler(request);
      const body = Buffer.from(await response.arrayBuffer());
      res.writeHead(response.status, { ...Object.fromEntries(response.headers), "content-length": String(body.length) }).end(body);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(`500 ${(err as Error).message}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => {
      chmodSync(socketPath, 0o600);
      resolve(server);
    });
  });
}
