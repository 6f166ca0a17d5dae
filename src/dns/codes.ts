/**
 * The one table of DNS record types and response codes (numbers ⇄ names) every DNS module uses: the answer core,
 * the JSON API, metrics and logs. Pure.
 */

/** Record type numbers (RFC 1035, 3596, 4034, 6891, 8482, 8659, 9460). */
export const TYPE = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, HINFO: 13, MX: 15, TXT: 16, AAAA: 28, SRV: 33, NAPTR: 35, OPT: 41, DS: 43,
  RRSIG: 46, NSEC: 47, DNSKEY: 48, NSEC3: 50, NSEC3PARAM: 51, SVCB: 64, HTTPS: 65, SPF: 99, IXFR: 251, AXFR: 252,
  ANY: 255, CAA: 257,
} as const;

export type TypeName = keyof typeof TYPE;

/** Response codes (RFC 1035, 6891: BADVERS is an extended RCODE). */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;

const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k]));
const RCODE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RCODE).map(([k, v]) => [v, k]));

/** A type's mnemonic, `TYPEnnn` (RFC 3597) for one without, `NONE` for -1 (no question). */
export function typeName(code: number): string {
  return code < 0 ? "NONE" : (TYPE_NAMES[code] ?? `TYPE${code}`);
}

/** A type number from its mnemonic (any case) or `TYPEnnn`; undefined when unknown. */
export function typeCode(name: string): number | undefined {
  const upper = name.toUpperCase();
  const known = (TYPE as Record<string, number>)[upper];
  if (known !== undefined) return known;
  const m = /^TYPE(\d{1,5})$/.exec(upper);
  return m && Number(m[1]) <= 65535 ? Number(m[1]) : undefined;
}

/** A response code's mnemonic, `RCODEnn` for one without. */
export function rcodeName(code: number): string {
  return RCODE_NAMES[code] ?? `RCODE${code}`;
}

/** A response code from its mnemonic (as dns-packet decodes it); undefined when unknown. */
export function rcodeCode(name: string): number | undefined {
  return (RCODE as Record<string, number>)[name.toUpperCase()];
}
