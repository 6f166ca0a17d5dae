/**
 * The DNS-over-HTTPS handler (RFC 8484) on itty-router: GET ?dns= and POST application/dns-message at /dns-query,
 * the JSON API at /resolve (and /dns-query with ?name=). Every DNS answer is HTTP 200; bad HTTP input is 400/405/415.
 * No runtime globals beyond the Fetch API: the workers and the Node host share it.
 *
 * `answerWire` is the answer core behind every route: the Node host's UDP/TCP listeners call it directly with the
 * peer address (no Request/Response per query), so only the HTTP framing differs between DoH and classic DNS.
 */
import { Router } from "itty-router";
import type { Cidr, IpBytes } from "../net/ip.ts";
import { answerQuery, type Answer, type Server, type Transport } from "./answer.ts";
import { clientAddress, peerAddress } from "../net/client-address.ts";
import { jsonAnswer, jsonQuery } from "./json.ts";

export const DNS_MESSAGE = "application/dns-message";
export const DNS_JSON = "application/dns-json";
const MAX_MESSAGE = 65535;

/** A request as workerd hands it over: `cf.clientIp` is the connecting address ("ip:port"). */
type DohRequest = Request & { cf?: { clientIp?: string }; query?: Record<string, string | string[] | undefined> };

const plain = (status: number, text: string, headers: Record<string, string> = {}) =>
  new Response(`${text}\n`, { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers } });

/** Decodes base64url without padding (padding tolerated); null when malformed. */
export function decodeBase64Url(s: string): Uint8Array | null {
  const t = s.replace(/=+$/, "");
  if (!/^[A-Za-z0-9_-]*$/.test(t) || t.length % 4 === 1) return null;
  const bin = atob(t.replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * One DNS message in wire format for a client address (null when unknown): the answer, or null when it must be
 * dropped (a response, a runt). Shared by the DoH routes here and the classic UDP/TCP host.
 */
export function answerWire(query: Uint8Array, client: IpBytes | null, server: Server, transport: Transport = "doh"): Answer | null {
  const o = server.observer;
  if (!o) return answerQuery(query, client, server);
  const started = o.timed ? o.clock() : 0;
  const answer = answerQuery(query, client, server);
  if (answer) o.answered(answer, client, transport, started);
  return answer;
}

function cacheControl(a: Answer): string {
  return a.tailored ? `private, max-age=${a.ttl}` : `max-age=${a.ttl}`;
}

/** Builds the fetch handler for a server (zone + GeoIP) and the proxies whose X-Forwarded-For is believed. */
export function createDohHandler(getServer: () => Server | Promise<Server>, trusted: Cidr[] = []) {
  const client = (req: DohRequest) => clientAddress(peerAddress(req), req.headers.get("x-forwarded-for"), trusted);
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

  async function wire(req: DohRequest, query: Uint8Array): Promise<Response> {
    const answer = answerWire(query, client(req), await getServer());
    if (!answer) return plain(400, "not a DNS query");
    return new Response(answer.bytes, {
      status: 200,
      headers: { "content-type": DNS_MESSAGE, "cache-control": cacheControl(answer), "content-length": String(answer.bytes.length) },
    });
  }

  async function json(req: DohRequest): Promise<Response> {
    const q = req.query ?? {};
    const built = jsonQuery(one(q.name), one(q.type), one(q.edns_client_subnet));
    if (typeof built === "string") return plain(400, built);
    const answer = answerWire(built, client(req), await getServer());
    if (!answer) return plain(400, "not a DNS query");
    return new Response(JSON.stringify(jsonAnswer(answer.bytes)), {
      status: 200,
      headers: { "content-type": DNS_JSON, "cache-control": cacheControl(answer) },
    });
  }

  const router = Router<DohRequest>();
  router
    .get("/dns-query", (req) => {
      const q = req.query ?? {};
      const dns = one(q.dns);
      if (dns === undefined) {
        if (q.name !== undefined) return json(req);
        return plain(400, "missing ?dns= (RFC 8484) or ?name= (JSON)");
      }
      const bytes = decodeBase64Url(dns);
      if (!bytes || bytes.length < 12 || bytes.length > MAX_MESSAGE) return plain(400, "?dns= is not a base64url DNS message");
      return wire(req, bytes);
    })
    .post("/dns-query", async (req) => {
      const type = (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
      if (type !== DNS_MESSAGE) return plain(415, `content-type must be ${DNS_MESSAGE}`);
      const length = Number(req.headers.get("content-length") ?? "0");
      if (length > MAX_MESSAGE) return plain(413, "DNS messages are at most 65535 bytes");
      const body = new Uint8Array(await req.arrayBuffer());
      if (body.length < 12 || body.length > MAX_MESSAGE) return plain(400, "body is not a DNS message");
      return wire(req, body);
    })
    .all("/dns-query", () => plain(405, "use GET or POST", { allow: "GET, POST" }))
    .get("/resolve", json)
    .all("/resolve", () => plain(405, "use GET", { allow: "GET" }))
    .all("*", () => plain(404, "not found: DoH is at /dns-query, JSON at /resolve"));

  /** The fetch handler: never throws (an internal error is a 500). */
  return async function fetch(request: Request): Promise<Response> {
    try {
      return (await router.fetch(request as DohRequest)) as Response;
    } catch (err) {
      return plain(500, `internal error: ${(err as Error).message}`);
    }
  };
}
