/** The fetch shapes every part shares: a fetch implementation, and a handler a host serves. */

/** `fetch` itself, or a stand-in with its signature (tests, service bindings). */
export type FetchLike = (input: Request | string, init?: RequestInit) => Promise<Response>;

/** What a host serves: a standard Request in, a Response out; `peer` is the connecting address the host saw. */
export type FetchHandler = (request: Request, peer: { address: string }) => Response | Promise<Response>;
