/**
 * The nats-server config of one server of the control plane's cluster, from cdn.toml's `[control]` (`npm run
 * nats-config`): its client port and the other servers come from `servers`, the clients' credentials from
 * user/password or token, so the boxes and the servers agree by construction. Pure; the text is natsServerConfig's,
 * the same code that runs the tests' clusters.
 */
import type { ControlConfig } from "../config/control-schema.ts";
import type { NkeyUser } from "./credentials.ts";
import { natsServerConfig, type NatsServerOptions } from "./nats-server.ts";

export interface ClusterServerChoice {
  /** Which entry of `[control] servers` this server is: its URL, or host[:port]. */
  server: string;
  /** The address it listens on (default: every address). */
  listen?: string;
  /** The JetStream store is `<dir>/jetstream`. */
  dir: string;
  /** The cluster's name (the same on every server). */
  cluster: string;
  /** Route and monitoring ports: the same on every server; default client port + 2000 and + 4000 (6222, 8222). */
  routePort?: number;
  httpPort?: number;
  tls?: { cert: string; key: string; ca?: string };
  /** Per-box nkeys (`npm run fleet -- keys`): the authorization instead of `[control]`'s user/password or token. */
  users?: NkeyUser[];
}

interface ServerAddress {
  url: string;
  host: string;
  port: number;
}

function addressOf(url: string): ServerAddress {
  const u = new URL(url);
  return { url, host: u.hostname, port: Number(u.port || 4222) };
}

/** The options of the chosen server; errors name the flag or the `[control]` field and the reason. */
export function clusterServerOptions(control: ControlConfig, choice: ClusterServerChoice): NatsServerOptions {
  const servers = control.servers.map(addressOf);
  const wanted = choice.server.includes("://") ? addressOf(choice.server) : addressOf(`nats://${choice.server}`);
  const byPort = /:\d+$/.test(choice.server.replace(/^\w+:\/\//, ""));
  const self = servers.find((s) => s.host === wanted.host && (!byPort || s.port === wanted.port));
  if (!self) throw new Error(`--server ${choice.server}: not one of [control] servers (${control.servers.join(", ")})`);
  if (servers.filter((s) => s.host === self.host).length > 1 && !byPort) {
    throw new Error(`--server ${choice.server}: several [control] servers are on ${self.host}; give host:port`);
  }
  if (control.creds !== undefined || (control.nkey !== undefined && !choice.users)) {
    throw new Error(`control.${control.creds !== undefined ? "creds" : "nkey"}: JWT authorization needs an operator setup this command does not write; use per-box nkeys (--keys DIR from npm run fleet -- keys), user + password or token`);
  }
  if (control.servers.some((s) => s.startsWith("tls://")) && !choice.tls) {
    throw new Error(`[control] servers are tls://: give the server's certificate (--tls-cert, --tls-key; --tls-ca for routes)`);
  }
  const port = (p: number | undefined, offset: number, flag: string) => {
    const value = p ?? self.port + offset;
    if (!Number.isInteger(value) || value < 1 || value > 65_535) throw new Error(`--${flag}: must be a port from 1 to 65535, not ${value}`);
    return value;
  };
  const routePort = port(choice.routePort, 2000, "route-port");
  const httpPort = port(choice.httpPort, 4000, "http-port");
  // Every server's route address: a server's own entry in the list is recognised and skipped by nats-server.
  const routes = servers.map((s) => `nats-route://${s.host}:${choice.routePort ?? s.port + 2000}`);
  return {
    dir: choice.dir,
    // Unique in the cluster: the host, with the port when several servers share a host (one machine, tests).
    serverName: `${self.host.replace(/[[\]]/g, "")}${servers.filter((s) => s.host === self.host).length > 1 ? `-${self.port}` : ""}`,
    host: choice.listen ?? "0.0.0.0",
    port: self.port,
    httpPort,
    ...(choice.users ? { users: choice.users, namespace: control.namespace } : {}),
    ...(!choice.users && control.token !== undefined ? { token: control.token } : {}),
    ...(!choice.users && control.user !== undefined ? { user: control.user, password: control.password } : {}),
    cluster: { name: choice.cluster, port: routePort, routes },
    ...(choice.tls ? { tls: choice.tls } : {}),
  };
}

/** The config text of the chosen server. */
export function clusterServerConfig(control: ControlConfig, choice: ClusterServerChoice): string {
  return natsServerConfig(clusterServerOptions(control, choice));
}
