/** EDNS Client Subnet (RFC 7871, option 8): strict parsing and the reply option. Pure. */

export const ECS_CODE = 8;

/** A valid ECS option from a query. */
export interface ClientSubnet {
  family: 1 | 2;
  source: number;
  /** Full-length address with the bits past SOURCE zero (formatIp for its text: the query log does, when on). */
  address: Uint8Array;
}

/**
 * Parses option data; "malformed" when the family is unknown, SOURCE is too long, SCOPE is not 0, the address has
 * the wrong number of bytes or bits set past SOURCE (all FORMERR per RFC 7871 §7.1.2).
 */
export function parseClientSubnet(data: Uint8Array): ClientSubnet | "malformed" {
  if (data.length < 4) return "malformed";
  const family = (data[0] << 8) | data[1];
  const source = data[2];
  const scope = data[3];
  if (family !== 1 && family !== 2) return "malformed";
  const size = family === 1 ? 4 : 16;
  if (source > size * 8 || scope !== 0) return "malformed";
  const addr = data.subarray(4);
  if (addr.length !== Math.ceil(source / 8)) return "malformed";
  if (source % 8 && addr.length && addr[addr.length - 1] & (0xff >> source % 8)) return "malformed";
  const address = new Uint8Array(size);
  address.set(addr);
  return { family, source, address };
}

/** Option data for the reply: FAMILY, SOURCE and ADDRESS echoed, SCOPE set. */
export function encodeClientSubnet(ecs: ClientSubnet, scope: number): Uint8Array {
  const n = Math.ceil(ecs.source / 8);
  const out = new Uint8Array(4 + n);
  out[0] = 0;
  out[1] = ecs.family;
  out[2] = ecs.source;
  out[3] = Math.max(0, Math.min(scope, ecs.family === 1 ? 32 : 128));
  out.set(ecs.address.subarray(0, n), 4);
  return out;
}
