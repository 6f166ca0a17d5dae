/**
 * EDNS (RFC 6891) in a query: at most one OPT, in the additional section, owned by the root; its payload size,
 * version, DO bit (RFC 3225) and options, of which ECS (RFC 7871) is parsed strictly. Pure.
 */
import { RCODE, TYPE } from "./codes.ts";
import { ECS_CODE, parseClientSubnet, type ClientSubnet } from "./ecs.ts";
import { counts, walkRecords, type RawQuestion } from "./wire.ts";

/** A query's valid OPT. */
export interface QueryEdns {
  version: number;
  /** The UDP payload size the client accepts (at least 512). */
  size: number;
  /** DNSSEC OK: the client wants signatures. */
  dnssecOk: boolean;
  ecs?: ClientSubnet;
}

/** The outcome: the OPT (or none), or the error to answer with (and whether that error carries an OPT). */
export type EdnsParse =
  | { ok: true; edns: QueryEdns | undefined }
  | { ok: false; rcode: number; withOpt: boolean; size: number };

/** Reads the EDNS of a query whose question `q` was read already. */
export function parseEdns(query: Uint8Array, q: RawQuestion): EdnsParse {
  const c = counts(query);
  const extra = c.an + c.ns + c.ar;
  if (extra === 0) return { ok: true, edns: undefined };
  const walked = walkRecords(query, q.end, extra);
  if (!walked) return { ok: false, rcode: RCODE.FORMERR, withOpt: false, size: 512 };
  let opt = -1;
  let count = 0;
  let misplaced = false;
  for (let i = 0; i < walked.records.length; i++) {
    const r = walked.records[i];
    if (r.type !== TYPE.OPT) continue;
    count++;
    opt = i;
    if (i < c.an + c.ns || query[r.start] !== 0) misplaced = true;
  }
  if (count > 1 || misplaced) return { ok: false, rcode: RCODE.FORMERR, withOpt: count > 0, size: 512 };
  if (opt < 0) return { ok: true, edns: undefined };
  const r = walked.records[opt];
  const size = Math.max(512, (query[r.fixed + 2] << 8) | query[r.fixed + 3]);
  const formerr = { ok: false, rcode: RCODE.FORMERR, withOpt: true, size } as const;
  let ecsData: Uint8Array | undefined;
  let twoEcs = false;
  for (let p = r.fixed + 10; p < r.end; ) {
    if (p + 4 > r.end) return formerr;
    const code = (query[p] << 8) | query[p + 1];
    const len = (query[p + 2] << 8) | query[p + 3];
    if (p + 4 + len > r.end) return formerr;
    if (code === ECS_CODE) {
      if (ecsData) twoEcs = true;
      ecsData = query.subarray(p + 4, p + 4 + len);
    }
    p += 4 + len;
  }
  const version = query[r.fixed + 5];
  if (version > 0) return { ok: false, rcode: RCODE.BADVERS, withOpt: true, size };
  if (twoEcs) return formerr;
  let ecs: ClientSubnet | undefined;
  if (ecsData) {
    const parsed = parseClientSubnet(ecsData);
    if (parsed === "malformed") return formerr;
    ecs = parsed;
  }
  return { ok: true, edns: { version, size, dnssecOk: (query[r.fixed + 6] & 0x80) !== 0, ecs } };
}
