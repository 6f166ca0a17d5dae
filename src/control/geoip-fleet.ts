/**
 * GeoIP data through the fleet, its pure part: the records in the fleet's key-value bucket (`<namespace>_fleet`) that
 * say which City database every DNS node and edge box runs, and what each one reports back. The bytes themselves are
 * in the object store `<namespace>_geoip` (geoip-objects.ts), one object per version (`v<N>.mmdb`).
 *
 *   geoip                      GeoipRecord   the version to run, and the one before it (for `geoip rollback`)
 *   geoip-at.<role>.<name>     GeoipStatus   what a DNS node (role dns) or edge box (role edge) runs, and why
 */
import { z } from "zod";
import { nameToken } from "./messages.ts";

export const GeoipVersionSchema = z
  .object({
    version: z.number().int().min(1),
    /** The object's name in the store. */
    object: z.string().regex(/^v\d+\.mmdb$/),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    size: z.number().int().min(1),
    database_type: z.string(),
    /** The edition's build time (its metadata), ms. */
    built: z.number(),
    source: z.string(),
    at: z.number(),
    by: z.string(),
  })
  .strict();
export type GeoipVersion = z.infer<typeof GeoipVersionSchema>;

export const GeoipRecordSchema = z
  .object({
    v: z.literal(1),
    current: GeoipVersionSchema,
    /** What ran before (`geoip rollback` goes back to it); null after a rollback or for the first push. */
    previous: GeoipVersionSchema.nullable(),
    reason: z.string(),
    at: z.number(),
    by: z.string(),
  })
  .strict();
export type GeoipRecord = z.infer<typeof GeoipRecordSchema>;

export const GEOIP_ROLES = ["dns", "edge"] as const;
export type GeoipRole = (typeof GEOIP_ROLES)[number];

export const GeoipStatusSchema = z
  .object({
    v: z.literal(1),
    name: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/),
    role: z.enum(GEOIP_ROLES),
    /** The fleet version it runs (0: its own [geoip] files). */
    version: z.number().int().min(0),
    sha256: z.string(),
    /** The version the record asks for. */
    target: z.number().int().min(0),
    state: z.enum(["applied", "refused", "fetching"]),
    reason: z.string(),
    /** When it began answering with `version`. */
    since: z.number().optional(),
    at: z.number(),
  })
  .strict();
export type GeoipStatus = z.infer<typeof GeoipStatusSchema>;

export const geoipKeys = {
  record: "geoip",
  status: (role: GeoipRole, name: string) => `geoip-at.${role}.${nameToken(name)}`,
  statuses: "geoip-at.",
};

/** The record after a push of `next`: the current version becomes the one before. */
export function pushedRecord(before: GeoipRecord | undefined, next: GeoipVersion, at: number, by: string): GeoipRecord {
  return { v: 1, current: next, previous: before?.current ?? null, reason: `pushed from ${next.source}`, at, by };
}

/** The record after a rollback, or the reason there is nothing to roll back to. */
export function rolledBackRecord(before: GeoipRecord | undefined, at: number, by: string): GeoipRecord | string {
  if (!before) return "no GeoIP database pushed yet";
  if (!before.previous) return `version ${before.current.version} has no version before it (${before.reason})`;
  return { v: 1, current: before.previous, previous: null, reason: `rolled back from version ${before.current.version}`, at, by };
}

/** One line of what a node or box runs, for an operator. */
export function describeGeoipStatus(s: GeoipStatus | undefined, record: GeoipRecord | undefined, now = Date.now()): string {
  const target = record?.current.version ?? 0;
  if (!s) return `pending GeoIP: never reported (asked for ${target ? `version ${target}` : "its own files"})`;
  const ok = s.state === "applied" && s.version === target;
  const runs = s.version ? `version ${s.version} (${s.sha256.slice(0, 12)})` : "its own [geoip] files";
  const ago = `${Math.max(0, Math.round((now - s.at) / 1000))} s ago`;
  return `${ok ? "ok     " : "pending"} GeoIP ${runs}: ${s.state}${s.reason ? ` (${s.reason})` : ""}, asked for ${s.target ? `version ${s.target}` : "its own files"}, ${ago}`;
}
