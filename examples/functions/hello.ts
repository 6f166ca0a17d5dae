/**
 * The demo's edge function (`npm start`): /hello/ answers with a banner for the visitor's country, from request.cf
 * (the edge's GeoIP data), and the demo origin's home page fetched through the edge's cache. Try it:
 *   curl http://127.0.0.2:8787/hello/
 *   curl -H 'X-Forwarded-For: 81.2.69.142' http://127.0.0.2:8787/hello/   (only from a trusted proxy, see docs/functions.md)
 * Write your own the same way: `export default { fetch(request, env, ctx) }`, as on Cloudflare Workers.
 */
interface Cf {
  country?: string;
  city?: string;
  colo?: string;
}

const greetings: Record<string, string> = { GB: "Hello", US: "Howdy", FR: "Bonjour", DE: "Hallo", SE: "Hej", JP: "Konnichiwa", CN: "Nǐ hǎo" };

export default {
  async fetch(request: Request, env: { BANNER_NOTE?: string }): Promise<Response> {
    const cf = ((request as { cf?: Cf }).cf ?? {}) as Cf;
    const url = new URL(request.url);
    // The home page through this edge's cache, as a Worker's fetch() goes through Cloudflare's cache.
    const home = await fetch(new URL("/", url), { headers: { accept: "text/html" } });
    const where = cf.country ? `${cf.city ? `${cf.city}, ` : ""}${cf.country}` : "somewhere this edge's GeoIP data does not know";
    const banner = `${greetings[cf.country ?? ""] ?? "Hello"} from ${where}! This answer was made by an edge function on edge ${cf.colo}.`;
    const body = `${banner}\n${env.BANNER_NOTE ?? ""}\nThe home page, through the cache: ${home.status} ${home.headers.get("x-cache-status") ?? ""}\n`;
    await home.body?.cancel();
    return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", "x-edge-function": "hello" } });
  },
};
