/**
 * A function's outbound gate: the function worker's `globalOutbound`, a worker of its own (another isolate, holding
 * nothing the function could read). Its own hosts go to the edge's engine (ENGINE: the edge's unix socket for
 * functions, which serves through the cache and never the CDN's own paths), `allow_hosts` to public addresses
 * (INTERNET), anything else is refused with a 403 the function sees.
 */
import { FUNCTION_REFUSED_HEADER } from "../contracts/functions.ts";
import { outboundDecision } from "./outbound.ts";

interface GateEnv {
  ENGINE: Fetcher;
  INTERNET: Fetcher;
  HOSTS: string[];
  ALLOW_HOSTS: string[];
}

export default {
  async fetch(request: Request, env: GateEnv): Promise<Response> {
    const url = URL.parse(request.url);
    const decision = url ? outboundDecision(url, env.HOSTS, env.ALLOW_HOSTS) : { to: "refused" as const, reason: "not a URL" };
    if (decision.to === "engine") return env.ENGINE.fetch(request);
    if (decision.to === "internet") return env.INTERNET.fetch(request);
    return new Response(`403 refused by the edge: ${decision.reason}\n`, {
      status: 403,
      headers: { "content-type": "text/plain; charset=utf-8", [FUNCTION_REFUSED_HEADER]: "1" },
    });
  },
};
