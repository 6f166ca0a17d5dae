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
});
