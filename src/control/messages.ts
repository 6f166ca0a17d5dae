/**
 * The control plane's names and message formats (one JSON object per NATS message, `"v": 1`). Every message read
 * from NATS is parsed strictly: a malformed one is refused with a reason and changes nothing.
 *
 *   stream <NS>_CONTROL   subjects <ns>.control.purge            PurgeMessage   (every edge box applies it)
 *                                  <ns>.control.drain.<edge>     DrainMessage   (that edge's box applies it)
 *   stream <NS>_PRESENCE  subjects <ns>.presence.<edge>          PresenceReport (last one per edge is kept)
 */
import { parsePurgeRequest, type PurgeRequest } from "../cache/purge.ts";

export interface ControlNames {
  controlStream: string;
  presenceStream: string;
  controlSubjects: string;
  purgeSubject: string;
  drainSubject(edge: string): string;
  presenceSubjects: string;
  presenceSubject(edge: string): string;
  /** The durable consumer of an edge box. */
  durable(edge: string): string;
}

/**
 * An edge name as one subject token / consumer name: edge names may hold '.', which NATS uses as a separator, so
 * '.' and '_' are escaped as `_2e` and `_5f` (unambiguous, and readable for the usual names).
 */
export function nameToken(edge: string): string {
  return edge.replace(/[._]/g, (c) => `_${c.charCodeAt(0).toString(16)}`);
}

/** Stream, subject and consumer names under a namespace (`[control] namespace`). */
export function controlNames(namespace: string): ControlNames {
  const upper = namespace.toUpperCase().replace(/-/g, "_");
  return {
    controlStream: `${upper}_CONTROL`,
    presenceStream: `${upper}_PRESENCE`,
    controlSubjects: `${namespace}.control.>`,
    purgeSubject: `${namespace}.control.purge`,
    drainSubject: (edge) => `${namespace}.control.drain.${nameToken(edge)}`,
    presenceSubjects: `${namespace}.presence.*`,
    presenceSubject: (edge) => `${namespace}.presence.${nameToken(edge)}`,
    durable: (edge) => `edge_${nameToken(edge)}`,
  };
}

export interface PurgeMessage {
  kind: "purge";
  request: PurgeRequest;
  /** Only these edges apply it (the CLI's --edge); absent = every edge. */
  targets?: string[];
  /** Publisher's clock, ms (informational: edges mark purges at the time they apply them). */
  at: number;
}

export interface DrainMessage {
  kind: "drain";
  edge: string;
  draining: boolean;
  at: number;
}

export type ControlMessage = PurgeMessage | DrainMessage;

/** What an edge box's agent reports about itself, on every apply and every presence interval. */
export interface PresenceReport {
  edge: string;
  /** The box start id (BOOT_ID) this report is about. */
  boot: string;
  /** The control stream's identity (its creation time) and the last sequence the box applied. */
  stream: string;
  seq: number;
  /** Whether the box had replayed everything pending since it started. */
  caughtUp: boolean;
  /** The edge's own health endpoint: "ok", "draining", or why it could not be read. */
  health: string;
  /** "running", or "stopped" when the box shut down cleanly. */
  state: "running" | "stopped";
  /** With [anycast] on the box: whether its prefixes are announced (the edge's `cdn-anycast`); absent otherwise. */
  anycast?: "announced" | "withdrawn";
  at: number;
}

const EDGE_NAME = /^[A-Za-z0-9._-]{1,128}$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A message as its wire bytes. */
export function encodeMessage(message: ControlMessage | PresenceReport): Uint8Array {
  return encoder.encode(JSON.stringify({ v: 1, ...message }));
}

function parseObject(data: Uint8Array | string): Record<string, unknown> | string {
  let value: unknown;
  try {
    value = JSON.parse(typeof data === "string" ? data : decoder.decode(data));
  } catch {
    return "not JSON";
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not a JSON object";
  const o = value as Record<string, unknown>;
  if (o.v !== 1) return `unknown version ${JSON.stringify(o.v)}`;
  return o;
}

const isTime = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x) && x >= 0;

/** A control message from its bytes, or the reason it is refused. */
export function parseControlMessage(data: Uint8Array | string): ControlMessage | string {
  const o = parseObject(data);
  if (typeof o === "string") return o;
  if (!isTime(o.at)) return '"at" must be a time in ms';
  if (o.kind === "purge") {
    const known = new Set(["v", "kind", "request", "targets", "at"]);
    for (const k of Object.keys(o)) if (!known.has(k)) return `unknown field "${k}"`;
    const request = parsePurgeRequest(o.request);
    if (typeof request === "string") return `request: ${request}`;
    if ("fanout" in (o.request as object)) return 'request: "fanout" has no meaning here';
    let targets: string[] | undefined;
    if (o.targets !== undefined) {
      if (!Array.isArray(o.targets) || !o.targets.length || o.targets.some((t) => typeof t !== "string" || !EDGE_NAME.test(t))) {
        return '"targets" must be a non-empty list of edge names';
      }
      targets = o.targets as string[];
    }
    return { kind: "purge", request, ...(targets ? { targets } : {}), at: o.at };
  }
  if (o.kind === "drain") {
    const known = new Set(["v", "kind", "edge", "draining", "at"]);
    for (const k of Object.keys(o)) if (!known.has(k)) return `unknown field "${k}"`;
    if (typeof o.edge !== "string" || !EDGE_NAME.test(o.edge)) return '"edge" must be an edge name';
    if (typeof o.draining !== "boolean") return '"draining" must be true or false';
    return { kind: "drain", edge: o.edge, draining: o.draining, at: o.at };
  }
  return `unknown kind ${JSON.stringify(o.kind)}`;
}

/** A presence report from its bytes, or the reason it is refused. */
export function parsePresence(data: Uint8Array | string): PresenceReport | string {
  const o = parseObject(data);
  if (typeof o === "string") return o;
  if (typeof o.edge !== "string" || !EDGE_NAME.test(o.edge)) return '"edge" must be an edge name';
  if (typeof o.boot !== "string" || o.boot.length > 64) return '"boot" must be a box start id';
  if (typeof o.stream !== "string" || o.stream.length > 64) return '"stream" must name the control stream';
  if (!Number.isSafeInteger(o.seq) || (o.seq as number) < 0) return '"seq" must be a stream sequence';
  if (typeof o.caughtUp !== "boolean") return '"caughtUp" must be true or false';
  if (typeof o.health !== "string" || o.health.length > 200) return '"health" must be a short text';
  if (o.state !== "running" && o.state !== "stopped") return '"state" must be "running" or "stopped"';
  if (!isTime(o.at)) return '"at" must be a time in ms';
  if (o.anycast !== undefined && o.anycast !== "announced" && o.anycast !== "withdrawn") return '"anycast" must be "announced" or "withdrawn"';
  const { edge, boot, stream, seq, caughtUp, health, state, anycast, at } = o as unknown as PresenceReport;
  return { edge, boot, stream, seq, caughtUp, health, state, ...(anycast ? { anycast } : {}), at };
}

/** Largest purge message published: well under NATS' default 1 MB payload limit. */
export const MAX_PURGE_MESSAGE_BYTES = 256 * 1024;
/** Longest single URL, prefix, tag or host in a purge. */
export const MAX_SELECTOR_BYTES = 16 * 1024;

/**
 * A purge request split into requests whose messages stay under `maxBytes` each (`all` and `soft` ride on the
 * first / every part), or the reason it cannot be sent.
 */
export function splitPurge(request: PurgeRequest, maxBytes = MAX_PURGE_MESSAGE_BYTES): PurgeRequest[] | string {
  const kinds = ["urls", "prefixes", "tags", "hosts"] as const;
  for (const k of kinds) {
    for (const item of request[k] ?? []) {
      if (encoder.encode(item).length > MAX_SELECTOR_BYTES) return `a purge selector in "${k}" is longer than ${MAX_SELECTOR_BYTES} bytes`;
    }
  }
  const soft = request.soft ? { soft: true } : {};
  const parts: PurgeRequest[] = [];
  let current: PurgeRequest = { ...(request.all ? { all: true } : {}), ...soft };
  let size = 200; // the envelope: kind, at, targets, soft, all
  const empty = (r: PurgeRequest) => !r.all && kinds.every((k) => !r[k]?.length);
  for (const k of kinds) {
    for (const item of request[k] ?? []) {
      const cost = encoder.encode(JSON.stringify(item)).length + 1;
      if (size + cost > maxBytes && !empty(current)) {
        parts.push(current);
        current = { ...soft };
        size = 200;
      }
      (current[k] ??= []).push(item);
      size += cost + k.length + 4;
    }
  }
  if (!empty(current)) parts.push(current);
  return parts;
}
