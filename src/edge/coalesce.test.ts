import { describe, expect, it } from "vitest";
import { Coalescer } from "./coalesce.ts";

describe("coalescing locks", () => {
  it("one claim per key until it is released; a claim after a store of the key says 'changed'", async () => {
    const c = new Coalescer({ timeoutMs: 5_000 });
    const mark = c.mark();
    const first = await c.claim("k", mark, () => {});
    expect(typeof first).toBe("object");
    expect(await c.claim("k", mark, () => {})).toBe("held");
    (first as { release(): void }).release();
    expect(await c.claim("k", mark, () => {})).toBe("changed");
    expect(typeof (await c.claim("k", c.mark(), () => {}))).toBe("object");
  });

  it("a lock whose holder never releases it lapses after lock_timeout_ms", async () => {
    const c = new Coalescer({ timeoutMs: 1_000 });
    expect(typeof (await c.claim("k", c.mark(), () => {}))).toBe("object"); // never released: its request died
    expect(await c.claim("k", c.mark(), () => {})).toBe("held");
    await new Promise((r) => setTimeout(r, 1_100));
    expect(typeof (await c.claim("k", c.mark(), () => {}))).toBe("object");
  });

  it("waiters wait lock_timeout_ms for a lock that is not renewed, even one shorter than the lock's own second", async () => {
    const c = new Coalescer({ timeoutMs: 200 });
    expect(typeof (await c.claim("k", c.mark(), () => {}))).toBe("object"); // never released nor renewed
    const t0 = Date.now();
    await c.wait("k");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expect(Date.now() - t0).toBeLessThan(600);
    expect(await c.claim("k", c.mark(), () => {})).toBe("held"); // the lock itself lasts a second
  });

  it("a lock held while its work is under way outlives lock_timeout_ms and keeps its waiters waiting; the store's lock is renewed too", async () => {
    const renewals: string[] = [];
    const held = new Set<string>();
    const shared = {
      acquire: async (key: string) => (held.has(key) ? "held" : (held.add(key), "taken")) as "taken" | "held",
      release: async (key: string) => void held.delete(key),
      renew: async (key: string) => void renewals.push(key),
      held: async () => false, // only this isolate's lock is looked at
      adopt: () => {},
    };
    const c = new Coalescer({ shared, timeoutMs: 1_000 });
    const claim = await c.claim("k", c.mark(), () => {});
    if (typeof claim !== "object") throw new Error("not taken");
    let finish!: () => void;
    claim.holdWhile(new Promise<void>((r) => (finish = r)));
    let waited = false;
    const waiting = c.wait("k").then(() => (waited = true));
    await new Promise((r) => setTimeout(r, 2_000));
    expect(waited).toBe(false);
    expect(renewals.length).toBeGreaterThanOrEqual(6); // every 250 ms
    expect(renewals.length).toBeLessThanOrEqual(9);
    finish();
    await new Promise((r) => setTimeout(r, 1_100)); // no renewal after the work: the lock lapses
    await waiting;
    expect(waited).toBe(true);
    const after = renewals.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(renewals.length).toBe(after);
    claim.release();
  });

  it("a lock whose work is over lapses lock_timeout_ms later, not before", async () => {
    const c = new Coalescer({ timeoutMs: 1_000 });
    const claim = await c.claim("k", c.mark(), () => {});
    if (typeof claim !== "object") throw new Error("not taken");
    claim.holdWhile(new Promise((r) => setTimeout(r, 700)));
    await new Promise((r) => setTimeout(r, 1_400));
    expect(await c.claim("k", c.mark(), () => {})).toBe("held"); // 1.4 s after it was taken
    const t0 = Date.now();
    await c.wait("k");
    expect(Date.now() - t0).toBeGreaterThan(50);
    expect(Date.now() - t0).toBeLessThan(700);
  });
});
