/** What the DNS director needs to know about an address; any field may be missing. */
export interface GeoInfo {
  city?: string;
  /** ISO 3166-1 alpha-2, upper case. */
  country?: string;
  /** AF AN AS EU NA OC SA. */
  continent?: string;
  /** Subdivision: ISO 3166-2 suffix (MaxMind) or state name (ip-location-db). */
  region?: string;
  lat?: number;
  lon?: number;
  asn?: number;
  asOrg?: string;
}

/** One database's answer: the fields it has and the prefix length of the block they hold for. */
export interface GeoHit {
  info: GeoInfo;
  /** Prefix length within the address's own family (0–32 or 0–128). */
  prefix: number;
}

/** A database that can be asked about one address family. */
export interface GeoSource {
  /** Which families this source answers. */
  families: ReadonlySet<4 | 6>;
  /** `ip` is the text form; `bytes` 4 or 16 bytes. Null when the source knows nothing. */
  lookup(ip: string, bytes: Uint8Array): GeoHit | null;
}

/** The combined lookup: location fields and AS fields, each with the prefix it holds for (ECS scope). */
export interface GeoResult {
  info: GeoInfo;
  /** Prefix of the location data (city/country/coordinates). */
  locationPrefix: number;
  /** Prefix of all data including the AS (for answers that print the AS). */
  prefix: number;
}
