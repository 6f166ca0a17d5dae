import { describe, expect, it } from "vitest";
import { newBootId, parseBootId } from "./boot.ts";

describe("box start ids", () => {
  it("carry the start time", () => {
    const id = newBootId(1_767_225_600_000);
    expect(id).toMatch(/^1767225600000-[0-9a-f]{16}$/);
    expect(parseBootId(id)).toEqual({ id, at: 1_767_225_600_000 });
    expect(newBootId(1)).not.toBe(newBootId(1));
    expect(parseBootId("x-1")).toBeUndefined();
    expect(parseBootId(undefined)).toBeUndefined();
  });
});
