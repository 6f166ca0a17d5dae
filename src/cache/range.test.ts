import { describe, expect, it } from "vitest";
import { ifRangeMatches, parseRange, sliceStream } from "./range.ts";

describe("Range", () => {
  it("parses single, suffix, open and multiple ranges, clamping to the size", () => {
    expect(parseRange("bytes=0-9", 100)).toEqual([{ start: 0, end: 9 }]);
    expect(parseRange("bytes=-10", 100)).toEqual([{ start: 90, end: 99 }]);
    expect(parseRange("bytes=95-", 100)).toEqual([{ start: 95, end: 99 }]);
    expect(parseRange("bytes=90-200", 100)).toEqual([{ start: 90, end: 99 }]);
    expect(parseRange("bytes=0-0, 5-6", 100)).toHaveLength(2);
  });

  it("answers unsatisfiable ranges with [] (416) and ignores malformed ones (null: whole body)", () => {
    expect(parseRange("bytes=100-", 100)).toEqual([]);
    expect(parseRange("bytes=5-1", 100)).toBeNull();
    expect(parseRange("items=0-1", 100)).toBeNull();
    expect(parseRange("bytes=a-b", 100)).toBeNull();
    expect(parseRange(null, 100)).toBeNull();
  });

  it("honours If-Range only with a strong matching validator", () => {
    expect(ifRangeMatches('"a"', '"a"', null)).toBe(true);
    expect(ifRangeMatches('"a"', 'W/"a"', null)).toBe(false);
    expect(ifRangeMatches('"a"', '"b"', null)).toBe(false);
    const lm = "Thu, 01 Jan 2026 00:00:00 GMT";
    expect(ifRangeMatches(lm, null, lm)).toBe(true);
    expect(ifRangeMatches(null, null, null)).toBe(true);
  });

  it("slices a chunked stream without reading past the range", async () => {
    const chunks = [0, 3, 6, 9, 12].map((n) => new Uint8Array([n, n + 1, n + 2]));
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (pulled < chunks.length) c.enqueue(chunks[pulled++]!);
        else c.close();
      },
    });
    const out = new Uint8Array(await new Response(sliceStream(body, 2, 4)).arrayBuffer());
    expect([...out]).toEqual([2, 3, 4]);
    expect(pulled).toBeLessThanOrEqual(3); // two chunks needed, one read ahead by the stream's queue
  });
});
