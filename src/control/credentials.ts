/**
 * Per-box NATS credentials (pure): who may publish what on the control plane. Every box, DNS node and operator gets
 * its own nkey (an ed25519 key; the server holds only the public halves, in its authorization block), and each role
 * only the subjects it needs:
 *
 *   box <name>  its own heartbeat (<ns>.presence.<name>), its own drain (<ns>.control.drain.<name>), its own status
 *               in the fleet's bucket ($KV.<bucket>.box.<name>), its own public curve key ($KV.<bucket>.xkey.<name>,
 *               see cert-seal.ts), and the JetStream API to read streams and run its consumers. Never a purge
 *               (<ns>.control.purge), another box's drain, status or key, the rollout record, a config version or a
 *               certificate; never a stream created, changed, purged or deleted (a stream's republish or subjects
 *               could otherwise carry its messages into the control stream).
 *   issuer      a box (as above) that also publishes the fleet's certificates ($KV.<bucket>.cert.*: `[acme] issuer`).
 *               A box may also write its own GeoIP status ($KV.<bucket>.geoip-at.edge.<name>).
 *   dns         reads: the JetStream API (same limits) and presence; writes its own GeoIP status
 *               ($KV.<bucket>.geoip-at.dns.<name>).
 *   redirector <name>  a mirror redirector box: its own heartbeat ($KV.<ns>_mirrors.box.<name>) and any mirror's
 *               state ($KV.<ns>_mirrors.mirror.*: which box scans a mirror moves with the live boxes), and the
 *               JetStream API (same limits). Nothing of the control stream or the fleet's bucket.
 *   operator    everything (the CLI: purges, drains, `fleet push`/`rollback`, creating the streams and the bucket).
 */
import { fleetBucket } from "./fleet-kv.ts";
import { nameToken } from "./messages.ts";
import { mirrorsBucket } from "../redirector/shared-state.ts";

export type CredentialRole = "box" | "issuer" | "dns" | "redirector" | "operator";

export interface NkeyUser {
  /** The box's name (role "box"), or a label. */
  name: string;
  role: CredentialRole;
  /** The public nkey (U…). */
  nkey: string;
}

export interface SubjectPermissions {
  publish: { allow: string[]; deny: string[] };
  subscribe: { allow: string[] };
}

/** JetStream API calls no box or DNS node may make: creating or changing streams, deleting data, cluster moves. */
const JS_API_DENIED = [
  "$JS.API.STREAM.CREATE.>",
  "$JS.API.STREAM.UPDATE.>",
  "$JS.API.STREAM.DELETE.>",
  "$JS.API.STREAM.PURGE.>",
  "$JS.API.STREAM.MSG.DELETE.>",
  "$JS.API.STREAM.RESTORE.>",
  "$JS.API.STREAM.SNAPSHOT.>",
  "$JS.API.STREAM.PEER.>",
  "$JS.API.STREAM.LEADER.>",
  "$JS.API.META.>",
  "$JS.API.SERVER.>",
  "$JS.API.ACCOUNT.>",
];

/** The subjects a role may use (undefined: the operator, unrestricted). */
export function permissionsOf(user: Pick<NkeyUser, "name" | "role">, namespace: string): SubjectPermissions | undefined {
  if (user.role === "operator") return undefined;
  const subscribe = { allow: ["_INBOX.>", `${namespace}.presence.*`] };
  const t = nameToken(user.name);
  if (user.role === "redirector") {
    const kv = `$KV.${mirrorsBucket(namespace)}`;
    return { publish: { allow: ["$JS.API.>", `${kv}.box.${t}`, `${kv}.mirror.*`], deny: JS_API_DENIED }, subscribe: { allow: ["_INBOX.>"] } };
  }
  const bucket = fleetBucket(namespace);
  // A DNS node writes its own GeoIP status (geoip-fleet.ts: geoip-at.<role>.<name>), nothing else in the bucket.
  if (user.role === "dns") return { publish: { allow: ["$JS.API.>", `$KV.${bucket}.geoip-at.dns.${t}`], deny: JS_API_DENIED }, subscribe };
  const own = [`${namespace}.presence.${t}`, `${namespace}.control.drain.${t}`, `$KV.${bucket}.box.${t}`, `$KV.${bucket}.xkey.${t}`, `$KV.${bucket}.geoip-at.edge.${t}`];
  return {
    publish: {
      allow: ["$JS.API.>", `$JS.ACK.>`, ...own, ...(user.role === "issuer" ? [`$KV.${bucket}.cert.*`] : [])],
      deny: JS_API_DENIED,
    },
    subscribe,
  };
}

/** nats-server's `authorization { users = [...] }` block for these users. */
export function nkeyAuthorization(users: readonly NkeyUser[], namespace: string): string[] {
  const q = JSON.stringify;
  const list = (xs: string[]) => `[${xs.map((x) => q(x)).join(", ")}]`;
  const lines = ["authorization {", "  users = ["];
  for (const u of users) {
    const p = permissionsOf(u, namespace);
    lines.push(`    # ${u.role}${u.role === "operator" ? "" : ` ${u.name}`}`);
    if (!p) {
      lines.push(`    { nkey: ${q(u.nkey)} }`);
      continue;
    }
    lines.push(
      `    { nkey: ${q(u.nkey)}, permissions: {`,
      `      publish: { allow: ${list(p.publish.allow)}, deny: ${list(p.publish.deny)} }`,
      `      subscribe: { allow: ${list(p.subscribe.allow)} }`,
      `    } }`,
    );
  }
  lines.push("  ]", "}");
  return lines;
}

/** The users file (`users.json`) the keys command writes and nats-config reads: checked, each problem named. */
export function parseUsers(text: string, source: string): NkeyUser[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${source}: not JSON`);
  }
  if (!Array.isArray(raw)) throw new Error(`${source}: must be a list of users`);
  return raw.map((u, i) => {
    const o = (u ?? {}) as Record<string, unknown>;
    if (typeof o.name !== "string" || !/^[A-Za-z0-9._-]{1,128}$/.test(o.name)) throw new Error(`${source}[${i}].name: a box or node name`);
    if (o.role !== "box" && o.role !== "issuer" && o.role !== "dns" && o.role !== "redirector" && o.role !== "operator") throw new Error(`${source}[${i}].role: box, issuer, dns, redirector or operator`);
    if (typeof o.nkey !== "string" || !/^U[A-Z2-7]{55}$/.test(o.nkey)) throw new Error(`${source}[${i}].nkey: a public user nkey (U…, 56 characters)`);
    return { name: o.name, role: o.role, nkey: o.nkey };
  });
}
