/**
 * A fake origin whose answers the tests script, path by path. It is a plain fetch handler, so it runs in-process
 * (engine unit tests), behind node:http (real-process tests) and is steered over HTTP from inside workerd:
 *   PUT  /__script/<path>   body: Script JSON      POST /__reset
 *   GET  /__hits/<path>     → {"hits": n, "last": {headers}}
 */
import { ifRangeMatches, parseRange, type ByteRange } from "../../src/cache/range.ts";
import { DropConnection } from "../../src/node/serve-fetch.ts";

export interface Script {
  status?: number;
  headers?: Record<string, string | string[]>;
  body?: string;
  /** Bytes of generated body (overrides body). */
  size?: number;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Send the body in 10 parts spread over this long (a slow origin). */
  trickleMs?: number;
  /** "reset": close the connection without an answer. */
  fail?: "reset";
  /** Answer conditionals with 304 when they match (default true). */
  conditional?: boolean;
  /** Honour a single `Range` (206 / 416), `If-Range`, `If-Match` and `If-Unmodified-Since` (412), as static file servers do. */
  ranges?: boolean;
  /** With `size`: byte i is (i + seed) % 251, so two versions of an object differ in every byte. */
  seed?: number;
  /** Send only this many body bytes, whatever the headers announce (a broken origin). */
  truncate?: number;
  /**
   * Send this many body bytes, then nothing (the connection stays open) until the request's client closes it or
   * `releaseStalls()` cuts the body (a stalled origin).
   */
  stallAfter?: number;
}

export class ScriptedOrigin {
  private scripts = new Map<string, Script>();
  private hits = new Map<string, number>();
  private last = new Map<string, Record<string, string>>();
  private sent = new Map<string, number>();
  /** Answers stalled by `stallAfter`, and how many of them their client closed (the edge aborted the fetch). */
  readonly stalls = { stalled: 0, closedByClient: 0 };
  private stallGate = gate();
  /** Every request's Range header (or "" without one), by path. */
  readonly ranges = new Map<string, string[]>();
  private readonly now: () => number;
  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  set(path: string, script: Script) {
    this.scripts.set(path, script);
  }
  hitsOf(path: string): number {
    return this.hits.get(path) ?? 0;
  }
  lastRequest(path: string): Record<string, string> | undefined {
    return this.last.get(path);
  }
  /** Body bytes the origin answered for a path. */
  bytesOf(path: string): number {
    return this.sent.get(path) ?? 0;
  }
  /** Ends every stalled answer (its body fails, so the connection closes without a complete body). */
  releaseStalls() {
    this.stallGate.open();
    this.stallGate = gate();
  }
  reset() {
    this.scripts.clear();
    this.hits.clear();
    this.last.clear();
    this.sent.clear();
    this.ranges.clear();
  }

  /** The part of `body` before `at`, then a stall until the client closes the connection or the test releases it. */
  private stalling(body: Uint8Array | string, at: number): ReadableStream<Uint8Array> {
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    const released = this.stallGate.opened;
    let sent = false;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        if (!sent) {
          sent = true;
          controller.enqueue(bytes.slice(0, at));
          return;
        }
        this.stalls.stalled++;
        await released;
        controller.error(new Error("stalled answer released"));
      },
      cancel: () => {
        this.stalls.closedByClient++;
      },
    });
  }

  handle = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/__script/") && request.method === "PUT") {
      this.set(url.pathname.slice("/__script".length) + url.search, (await request.json()) as Script);
      return new Response("ok");
    }
    if (url.pathname.startsWith("/__hits/")) {
      const path = url.pathname.slice("/__hits".length) + url.search;
      return Response.json({ hits: this.hitsOf(path), last: this.lastRequest(path) ?? null });
    }
    if (url.pathname === "/__reset") {
      this.reset();
      return new Response("ok");
    }
    const path = url.pathname + url.search;
    this.hits.set(path, this.hitsOf(path) + 1);
    this.last.set(path, Object.fromEntries(request.headers));
    this.ranges.set(path, [...(this.ranges.get(path) ?? []), request.headers.get("range") ?? ""]);
    if (request.body) await request.arrayBuffer();
    const script = this.scripts.get(path) ?? this.scripts.get(url.pathname) ?? { status: 404, body: "not scripted\n" };
    if (script.delayMs) await new Promise((r) => setTimeout(r, script.delayMs));
    if (script.fail === "reset") throw new DropConnection("scripted reset");
    const headers = new Headers();
    for (const [name, value] of Object.entries(script.headers ?? {})) {
      for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
    }
    if (!headers.has("date")) headers.set("date", new Date(this.now()).toUTCString());
    const status = script.status ?? 200;
    if (script.conditional !== false && status === 200 && matchesConditional(request.headers, headers)) {
      headers.delete("content-length");
      return new Response(null, { status: 304, headers });
    }
    let body: Uint8Array | string = script.size !== undefined ? pattern(script.size, script.seed) : (script.body ?? "");
    let answer = status;
    if (script.ranges && status === 200) {
      const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
      const partial = rangeAnswer(request.headers, headers, bytes);
      if (partial === 412 || partial === 416) {
        if (partial === 416) headers.set("content-range", `bytes */${bytes.byteLength}`);
        return new Response(null, { status: partial, headers });
      }
      if (partial) {
        headers.set("content-range", `bytes ${partial.start}-${partial.end}/${bytes.byteLength}`);
        body = bytes.subarray(partial.start, partial.end + 1);
        answer = 206;
      }
    }
    if (script.truncate !== undefined && typeof body !== "string") body = body.subarray(0, script.truncate);
    const noBody = request.method === "HEAD" || [204, 304].includes(status);
    const length = typeof body === "string" ? new TextEncoder().encode(body).byteLength : body.byteLength;
    if (!noBody && !headers.has("content-length")) headers.set("content-length", String(length));
    if (!noBody) this.sent.set(path, this.bytesOf(path) + length);
    if (noBody) return new Response(null, { status: answer, headers });
    if (script.stallAfter !== undefined) return new Response(this.stalling(body, script.stallAfter), { status: answer, headers });
    return new Response(script.trickleMs ? trickle(body, script.trickleMs) : body, { status: answer, headers });
  };
}

/** A promise the test opens. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = () => {};
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
}

/** `body` in 10 parts, one every tenth of `ms`. */
function trickle(body: Uint8Array | string, ms: number): ReadableStream<Uint8Array> {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const step = Math.ceil(bytes.byteLength / 10);
  let at = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      await new Promise((r) => setTimeout(r, ms / 10));
      controller.enqueue(bytes.slice(at, at + step));
      at += step;
      if (at >= bytes.byteLength) controller.close();
    },
  });
}

function matchesConditional(req: Headers, res: Headers): boolean {
  const inm = req.get("if-none-match");
  const etag = res.get("etag");
  if (inm && etag) return inm.split(",").some((t) => t.trim().replace(/^W\//, "") === etag.replace(/^W\//, ""));
  const ims = req.get("if-modified-since");
  const lm = res.get("last-modified");
  return !!ims && !!lm && Date.parse(lm) <= Date.parse(ims);
}

/** A static file server's Range handling: 412 for a failed If-Match / If-Unmodified-Since, a single range, or 416. */
function rangeAnswer(req: Headers, res: Headers, body: Uint8Array): ByteRange | 412 | 416 | null {
  const etag = res.get("etag");
  const lastModified = res.get("last-modified");
  const ifMatch = req.get("if-match");
  if (ifMatch !== null && ifMatch.trim() !== "*" && !ifMatch.split(",").some((t) => t.trim() === etag)) return 412;
  const ius = req.get("if-unmodified-since");
  if (ius !== null && lastModified !== null && Date.parse(lastModified) > Date.parse(ius)) return 412;
  if (!ifRangeMatches(req.get("if-range"), etag, lastModified)) return null;
  const ranges = parseRange(req.get("range"), body.byteLength);
  if (ranges === null || ranges.length > 1) return null;
  return ranges.length ? ranges[0]! : 416;
}

/** Deterministic bytes: byte i is (i + seed) mod 251, so any slice can be checked (and versions told apart). */
export function pattern(size: number, seed = 0): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i + seed) % 251;
  return out;
}
