/**
 * When to ask the CA: pure decisions over a certificate's validity and the attempts so far, tested with a fake clock.
 * A certificate is renewed once `renew_at` of its lifetime has passed (2/3: 30 days before a 90-day certificate
 * expires, 2 days before a 6-day one), or at once when it is missing, expired or does not cover the site's names.
 * A failed attempt waits retry_min, doubling up to retry_max, so a broken setup cannot hammer the CA (Let's
 * Encrypt allows 5 failed validations per hostname per hour); the old certificate keeps being served meanwhile.
 */

export interface Validity {
  notBefore: number;
  notAfter: number;
}

export interface RenewalPolicy {
  /** Fraction of the lifetime after which to renew. */
  renewAt: number;
  retryMinMs: number;
  retryMaxMs: number;
}

export interface AttemptState {
  /** Failed attempts in a row (0 after a success). */
  failures: number;
  /** Unix ms of the last attempt's end, if any. */
  lastAttempt?: number;
}

/** The moment a certificate becomes due. */
export function renewalTime(cert: Validity, renewAt: number): number {
  return cert.notBefore + Math.floor((cert.notAfter - cert.notBefore) * renewAt);
}

/** Why a site needs a certificate now, or null when its current one is good until renewalTime. */
export function renewalReason(
  cert: (Validity & { coversNames: boolean }) | undefined,
  now: number,
  renewAt: number,
): "missing" | "expired" | "names" | "due" | null {
  if (!cert) return "missing";
  if (now >= cert.notAfter) return "expired";
  if (!cert.coversNames) return "names";
  if (now >= renewalTime(cert, renewAt)) return "due";
  return null;
}

/** How long to wait after `failures` failed attempts in a row: retryMin × 2^(failures−1), at most retryMax. */
export function retryDelay(failures: number, policy: Pick<RenewalPolicy, "retryMinMs" | "retryMaxMs">): number {
  if (failures <= 0) return 0;
  return Math.min(policy.retryMaxMs, policy.retryMinMs * 2 ** Math.min(failures - 1, 30));
}

/** The earliest time the next attempt may start. */
export function nextAttemptAt(state: AttemptState, policy: Pick<RenewalPolicy, "retryMinMs" | "retryMaxMs">): number {
  if (state.lastAttempt === undefined || state.failures === 0) return 0;
  return state.lastAttempt + retryDelay(state.failures, policy);
}

/** Whether to start an attempt now. */
export function shouldAttempt(
  cert: (Validity & { coversNames: boolean }) | undefined,
  state: AttemptState,
  now: number,
  policy: RenewalPolicy,
): boolean {
  return renewalReason(cert, now, policy.renewAt) !== null && now >= nextAttemptAt(state, policy);
}
