/**
 * The DNS-01 contract with the project's DNS nodes: every node of the zone gets the challenge TXT through its
 * authenticated HTTP call, and the CA is asked to validate only once each node answers it over DNS (with GeoDNS any
 * node may get the CA's query).
 *
 *   POST   <node>/admin/acme-challenge  {"name":"_acme-challenge.www.geo.example.org","value":"<txt>","ttl":600}
 *   DELETE <node>/admin/acme-challenge  {"name":"…","value":"…"}          (Authorization: Bearer <admin token>)
 */
import { Resolver } from "node:dns/promises";

export interface ChallengeNode {
  /** Base URL of the node's HTTP listener. */
  url: string;
  /** `address:port` of its DNS listener. */
  dns: string;
}

export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

/** Asks one DNS server for a TXT name's values (each record's strings joined). */
export type TxtLookup = (server: string, name: string) => Promise<string[]>;

/** TXT lookup straight at one server (c-ares, UDP, one try of 2 s): no cache in between. */
export const lookupTxt: TxtLookup = async (server, name) => {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([server]);
  try {
    return (await resolver.resolveTxt(name)).map((chunks) => chunks.join(""));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENODATA" || code === "ENOTFOUND") return [];
    throw err;
  }
};

export interface PublisherOptions {
  nodes: ChallengeNode[];
  token: string;
  fetch?: FetchLike;
  lookup?: TxtLookup;
  /** TTL of the published record. */
  ttl?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** Publishes, checks and removes challenge TXT records on every DNS node. */
export class ChallengePublisher {
  private readonly opts: Required<PublisherOptions>;

  constructor(opts: PublisherOptions) {
    this.opts = {
      fetch: (url, init) => fetch(url, init),
      lookup: lookupTxt,
      ttl: 600,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      now: () => Date.now(),
      ...opts,
    };
  }

  private async call(method: "POST" | "DELETE", node: ChallengeNode, body: object): Promise<void> {
    const url = new URL("admin/acme-challenge", node.url.endsWith("/") ? node.url : `${node.url}/`).toString();
    let res: Response;
    try {
      res = await this.opts.fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.opts.token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) {
      throw new Error(`DNS node ${node.url}: ${method} acme-challenge failed: ${(err as Error).message}`);
    }
    const text = await res.text().catch(() => "");
    if (!res.ok) throw new Error(`DNS node ${node.url}: ${method} acme-challenge answered ${res.status} ${text.trim().slice(0, 200)}`);
  }

  /** Adds the TXT value at `name` on every node; fails if any node refuses (none may be left without it). */
  async publish(name: string, value: string): Promise<void> {
    await Promise.all(this.opts.nodes.map((n) => this.call("POST", n, { name, value, ttl: this.opts.ttl })));
  }

  /** Removes the TXT value from every node; returns the errors (removal is best effort: the value is harmless). */
  async remove(name: string, value: string): Promise<string[]> {
    const results = await Promise.allSettled(this.opts.nodes.map((n) => this.call("DELETE", n, { name, value })));
    return results.flatMap((r) => (r.status === "rejected" ? [(r.reason as Error).message] : []));
  }

  /** Waits until every node answers the value at `name` over DNS; throws naming the nodes that did not in time. */
  async waitVisible(name: string, value: string, timeoutMs: number): Promise<void> {
    const deadline = this.opts.now() + timeoutMs;
    const pending = new Set(this.opts.nodes.map((n) => n.dns));
    let lastError = "";
    for (let round = 0; pending.size > 0; round++) {
      for (const server of [...pending]) {
        try {
          if ((await this.opts.lookup(server, name)).includes(value)) pending.delete(server);
        } catch (err) {
          lastError = `${server}: ${(err as Error).message}`;
        }
      }
      if (!pending.size) return;
      if (this.opts.now() >= deadline) {
        throw new Error(`TXT ${name} not answered by ${[...pending].join(", ")} within ${timeoutMs} ms${lastError ? ` (${lastError})` : ""}`);
      }
      await this.opts.sleep(Math.min(2000, 100 * 2 ** Math.min(round, 4)));
    }
  }
}
