/**
 * Schema of `[control]`: the NATS JetStream control plane that carries purges, drains and edge presence between
 * edge boxes. Without the table, purges fan out over HTTP to every `[[edges]]` url (one machine, `npm start`).
 */
import { z } from "zod";

/** `nats://host:port` or `tls://host:port` (IPv6 in brackets). */
const ServerUrl = z.string().refine((s) => {
  if (!/^(nats|tls):\/\//.test(s) || !URL.canParse(s)) return false;
  const u = new URL(s);
  return u.hostname !== "" && u.pathname.replace(/^\/$/, "") === "" && !u.search && !u.hash && !u.username;
}, "must be nats://host:port or tls://host:port (credentials go in user/password, token, creds or nkey)");

const path = z.string().min(1);

export const ControlSchema = z
  .object({
    /** The NATS servers (all of a cluster's, so a client reaches a live one). */
    servers: z.array(ServerUrl).min(1, "list at least one server"),
    /** Credentials, at most one kind: user + password, a token, a creds file (JWT + seed), or an nkey seed file. */
    user: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    token: z.string().min(1).optional(),
    creds: path.optional(),
    nkey: path.optional(),
    /** TLS: the CA that signed the servers' certificates (PEM); a client certificate and key for mutual TLS. */
    tls_ca: path.optional(),
    tls_cert: path.optional(),
    tls_key: path.optional(),
    /** Names on the NATS account: streams PARROT_CONTROL and PARROT_PRESENCE, subjects parrot.control.> and parrot.presence.>. */
    namespace: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, "lower-case letters, digits, '_' and '-', starting with a letter").default("parrot"),
    /** Copies of each stream: 1 for a single server, 3 for the three-server production cluster. */
    replicas: z.number().int().min(1).max(5).default(1),
    /**
     * Seconds a purge or drain is kept for edges that are away. An edge away longer finds a gap when it returns and
     * revalidates everything it stored before (a soft purge of all).
     */
    retention: z.number().int().min(60).max(366 * 86_400).default(7 * 86_400),
    /** Between presence reports (health, caught-up state) of each edge box's agent. */
    presence_interval_ms: z.number().int().min(100).max(600_000).default(5_000),
    /** How long a purge call collects "applied" reports before it answers (it never waits for more than stored). */
    report_ms: z.number().int().min(0).max(60_000).default(2_000),
    /** How long the JetStream acknowledgement of a published purge may take before the call fails. */
    publish_timeout_ms: z.number().int().min(100).max(60_000).default(5_000),
    /**
     * How long an edge box trusts its cache after it was last confirmed current on the control stream (the agent
     * checks every second). Past it the box cannot know of purges made meanwhile (a dead or hung NATS server, a
     * partition): see `when_cut_off`.
     */
    lease_ms: z.number().int().min(2_000).max(600_000).default(5_000),
    /**
     * What a box whose lease expired does with stored entries: "revalidate" (conditional requests to the origin; a
     * purge made meanwhile is never served) or "serve" (answer from cache as before: a purge made meanwhile is served
     * stale until the box hears the control plane again).
     */
    when_cut_off: z.enum(["revalidate", "serve"]).default("revalidate"),
    /** How long a purge or drain call keeps retrying a publish JetStream did not acknowledge (a leader election, a hung server). */
    publish_deadline_ms: z.number().int().min(0).max(120_000).default(20_000),
    /** `npm run edge` waits this long for the agent's catch-up before it says "edge ready" (serving meanwhile). */
    catch_up_timeout_ms: z.number().int().min(0).max(600_000).default(30_000),
    /**
     * The box takes its shared configuration from the fleet (`npm run fleet -- push`: the key-value bucket
     * `<namespace>_fleet`), keeping from its own file only the per-box fields (src/control/fleet-config.ts).
     */
    fleet: z.boolean().default(false),
    /** A DNS node's name on the control plane (its key's, `fleet keys --dns NAME`); default its host name. Boxes use [edge] name. */
    name: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/).optional(),
  })
  .strict()
  .refine((c) => (c.user === undefined) === (c.password === undefined), {
    message: "user and password go together",
    path: ["password"],
  })
  .refine((c) => [c.user ?? c.password, c.token, c.creds, c.nkey].filter((x) => x !== undefined).length <= 1, {
    message: "choose one kind of credentials: user + password, token, creds or nkey",
    path: ["token"],
  })
  .refine((c) => (c.tls_cert === undefined) === (c.tls_key === undefined), {
    message: "tls_cert and tls_key go together",
    path: ["tls_key"],
  });

export type ControlConfig = z.infer<typeof ControlSchema>;
