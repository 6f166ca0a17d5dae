/** Schema of `[privacy]`: what the CDN writes down about its clients (logs), on every part alike. */
import { z } from "zod";

export const PrivacySchema = z
  .object({
    /**
     * How a client's address appears in access logs, DNS query logs and log events: `truncate` (its network, e.g.
     * 81.2.69.0/24), `hash` (a keyed hash whose key changes every UTC day and is forgotten), or `full`.
     */
    client_addresses: z.enum(["truncate", "hash", "full"]).default("truncate"),
    /** With `truncate`: the IPv4 prefix kept. */
    ipv4_prefix: z.number().int().min(0, "must be 0–32").max(32, "must be 0–32").default(24),
    /** With `truncate`: the IPv6 prefix kept. */
    ipv6_prefix: z.number().int().min(0, "must be 0–128").max(128, "must be 0–128").default(48),
    /** How long logs are kept: the journald namespace `scripts/systemd-unit.ts --journald` writes. */
    log_retention_days: z.number().int().min(1, "must be at least 1 day").max(3650, "must be at most 3650 days").default(7),
  })
  .strict();

export type PrivacyConfig = z.infer<typeof PrivacySchema>;
