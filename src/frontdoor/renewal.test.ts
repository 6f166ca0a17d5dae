import { describe, expect, it } from "vitest";
import { nextAttemptAt, renewalReason, renewalTime, retryDelay, shouldAttempt } from "./renewal.ts";

const DAY = 86_400_000;
const policy = { renewAt: 2 / 3, retryMinMs: 300_000, retryMaxMs: 6 * 3600_000 };
const cert90 = (issued: number, coversNames = true) => ({ notBefore: issued, notAfter: issued + 90 * DAY, coversNames });

describe("renewal", () => {
  it("renews a 90-day certificate 30 days before it expires, a 6-day one 2 days before", () => {
    expect(renewalTime({ notBefore: 0, notAfter: 90 * DAY }, 2 / 3)).toBe(60 * DAY);
    expect(renewalTime({ notBefore: 0, notAfter: 6 * DAY }, 2 / 3)).toBe(4 * DAY);
  });

  it("says why a certificate is needed now, or null while it is good", () => {
    const cert = cert90(0);
    expect(renewalReason(undefined, 0, 2 / 3)).toBe("missing");
    expect(renewalReason(cert, 59 * DAY, 2 / 3)).toBeNull();
    expect(renewalReason(cert, 60 * DAY, 2 / 3)).toBe("due");
    expect(renewalReason(cert, 90 * DAY, 2 / 3)).toBe("expired");
    expect(renewalReason(cert90(0, false), DAY, 2 / 3)).toBe("names");
  });

  it("backs off after failures, doubling up to the maximum, so the CA is not hammered", () => {
    expect(retryDelay(0, policy)).toBe(0);
    expect(retryDelay(1, policy)).toBe(300_000);
    expect(retryDelay(2, policy)).toBe(600_000);
    expect(retryDelay(5, policy)).toBe(4_800_000);
    expect(retryDelay(10, policy)).toBe(6 * 3600_000);
    expect(retryDelay(1000, policy)).toBe(6 * 3600_000);
  });

  it("keeps the old certificate between failed attempts and tries again when the backoff has passed", () => {
    const cert = cert90(0);
    let now = 61 * DAY; // due
    const state = { failures: 0, lastAttempt: undefined as number | undefined };
    expect(shouldAttempt(cert, state, now, policy)).toBe(true);
    // The attempt fails: nothing is tried again for 5 minutes, then 10.
    state.failures = 1;
    state.lastAttempt = now;
    expect(nextAttemptAt(state, policy)).toBe(now + 300_000);
    expect(shouldAttempt(cert, state, now + 299_999, policy)).toBe(false);
    expect(shouldAttempt(cert, state, now + 300_000, policy)).toBe(true);
    now += 300_000;
    state.failures = 2;
    state.lastAttempt = now;
    expect(shouldAttempt(cert, state, now + 599_999, policy)).toBe(false);
    expect(shouldAttempt(cert, state, now + 600_000, policy)).toBe(true);
    // A success resets the count; the new certificate is not due.
    expect(shouldAttempt(cert90(now + 600_000), { failures: 0, lastAttempt: now + 600_000 }, now + 600_001, policy)).toBe(false);
  });
});
