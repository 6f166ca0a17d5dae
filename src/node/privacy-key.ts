/**
 * The box's key of the day for hashed client addresses ([privacy] client_addresses = "hash"). The host makes it at
 * start and keeps it in its environment as PARROT_PRIVACY_KEY, so every process it starts (workerd edges through the
 * `fromEnvironment` binding, DNS worker processes) hashes with the same chain; each moves it forward at midnight UTC.
 * It is never written to disk; the host's copy is moved forward every hour (src/privacy/client-addresses.ts).
 */
import { DailyKey } from "../privacy/client-addresses.ts";

export const PRIVACY_KEY_ENV = "PARROT_PRIVACY_KEY";

let hostKey: DailyKey | undefined;

/** This process's key: the one its parent handed down, else a new one (then handed down to its children). */
export function hostPrivacyKey(): DailyKey {
  if (hostKey) return hostKey;
  const inherited = process.env[PRIVACY_KEY_ENV];
  hostKey = (inherited && DailyKey.parse(inherited)) || DailyKey.fresh();
  const handDown = () => {
    process.env[PRIVACY_KEY_ENV] = hostKey!.serialize();
  };
  handDown();
  setInterval(handDown, 3_600_000).unref();
  return hostKey;
}
