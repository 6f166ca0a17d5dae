import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import type { EntryMeta, SlicedObject } from "./entry.ts";
import {
  canSlice,
  firstWantedByte,
  neededBytes,
  parseContentRange,
  sameVersion,
  sliceCount,
  sliceFits,
  sliceKey,
  sliceMeta,
  sliceOf,
  sliceSettings,
  sliceSpan,
  validatorsOf,
  versionConditions,
  versionId,
} from "./slices.ts";

const MiB = 1024 * 1024;

describe("slice arithmetic", () => {
  it("cuts an object into aligned slices, the last one shorter", () => {
    expect(sliceCount(10 * MiB + 1, 4 * MiB)).toBe(3);
    expect(sliceSpan(0, 4 * MiB, 10 * MiB + 1)).toEqual({ start: 0, end: 4 * MiB - 1 });
    expect(sliceSpan(2, 4 * MiB, 10 * MiB + 1)).toEqual({ start: 8 * MiB, end: 10 * MiB });
    expect(sliceOf(4 * MiB - 1, 4 * MiB)).toBe(0);
    expect(sliceOf(4 * MiB, 4 * MiB)).toBe(1);
  });

  it("parses Content-Range strictly, with the total it announces", () => {
    expect(parseContentRange("bytes 0-99/1000")).toEqual({ start: 0, end: 99, total: 1000 });
    expect(parseContentRange("bytes */1000")).toEqual({ unsatisfied: true, total: 1000 });
    for (const bad of ["bytes 0-99/*", "bytes 99-0/1000", "bytes 0-1000/1000", "items 0-1/2", "bytes 0-1", null, "bytes 1-2/99999999999999999"]) {
      expect(parseContentRange(bad)).toBeNull();
    }
  });

  it("applies the rule's slicing over [edge], 0 turning it off, the threshold at most max_object_bytes", () => {
    const config = parseConfig(`[edge]\norigin = "http://o.test"\nslice_bytes = 1048576\nslice_threshold_bytes = 5000000\nmax_object_bytes = 3000000\n[[rules]]\npath = "/off/**"\nslice_threshold_bytes = 0\n[[rules]]\npath = "/big/**"\nslice_bytes = 4194304\n`);
    const edge = config.edge!;
    expect(sliceSettings(edge, undefined)).toEqual({ sliceBytes: MiB, thresholdBytes: 3_000_000 });
    expect(sliceSettings(edge, config.rules[0])).toBeUndefined();
    expect(sliceSettings(edge, config.rules[1])).toEqual({ sliceBytes: 4 * MiB, thresholdBytes: 4 * MiB });
  });

  it("rejects slice settings out of bounds, naming the field", () => {
    expect(() => parseConfig(`[edge]\norigin = "http://o.test"\nslice_bytes = 1000\n`)).toThrow(/edge\.slice_bytes/);
    expect(() => parseConfig(`[edge]\norigin = "http://o.test"\n[[rules]]\nslice_threshold_bytes = -1\n`)).toThrow(/slice_threshold_bytes/);
  });
});

describe("object versions", () => {
  const headers = (h: Record<string, string>) => new Headers(h);

  it("slices only what a strong ETag or a Last-Modified tells apart", () => {
    expect(canSlice(headers({ etag: '"a"' }))).toBe(true);
    expect(canSlice(headers({ "last-modified": "Wed, 01 Jan 2026 00:00:00 GMT" }))).toBe(true);
    expect(canSlice(headers({ etag: 'W/"a"' }))).toBe(false);
    expect(canSlice(headers({}))).toBe(false);
    expect(validatorsOf(headers({ etag: 'W/"a"', "last-modified": "x" }))).toEqual({ lastModified: "x" });
  });

  it("keys each version's slices apart, and the same version the same way every time", () => {
    const a = versionId({ etag: '"1"' }, 100, 10);
    expect(versionId({ etag: '"1"' }, 100, 10)).toBe(a);
    expect(versionId({ etag: '"2"' }, 100, 10)).not.toBe(a);
    expect(versionId({ etag: '"1"' }, 101, 10)).not.toBe(a);
    expect(versionId({ etag: '"1"' }, 100, 20)).not.toBe(a);
    expect(sliceKey("h/iso#v=ab;x=1", a, 7)).toBe(`h/iso#v=ab;x=1#s=${a};7`);
  });

  it("calls a response the same version only with the same total and validators", () => {
    const object = { etag: '"e"', lastModified: "Mon, 01 Jun 2026 00:00:00 GMT", total: 100 };
    expect(sameVersion(object, { ...object })).toBe(true);
    expect(sameVersion(object, { etag: '"e"', total: 100 })).toBe(true); // Last-Modified left out: the ETag decides
    expect(sameVersion(object, { ...object, total: 99 })).toBe(false);
    expect(sameVersion(object, { ...object, etag: '"f"' })).toBe(false);
    expect(sameVersion(object, { total: 100, lastModified: object.lastModified })).toBe(false); // no ETag where one was
    expect(sameVersion(object, { ...object, lastModified: "Tue, 02 Jun 2026 00:00:00 GMT" })).toBe(false);
    const byDate = { lastModified: object.lastModified, total: 100 };
    expect(sameVersion(byDate, { ...byDate, etag: '"any"' })).toBe(true);
    expect(sameVersion(byDate, { total: 100 })).toBe(false);
    expect(versionConditions(object)).toEqual({ "if-match": '"e"' });
    expect(versionConditions(byDate)).toEqual({ "if-unmodified-since": object.lastModified });
  });

  it("accepts a stored slice only for its record's version and place", () => {
    const sliced: SlicedObject = { total: 25, sliceBytes: 10, version: "v1" };
    const record = { kind: "entry", key: "h/x", etag: '"e"', tags: ["t"], sliced } as unknown as EntryMeta & { sliced: SlicedObject };
    const meta = sliceMeta(record, 2, 1000);
    expect(meta).toMatchObject({ kind: "slice", key: "h/x", index: 2, start: 20, end: 24, total: 25, etag: '"e"', tags: ["t"] });
    expect(sliceFits(meta, record, 2)).toBe(true);
    expect(sliceFits(meta, record, 1)).toBe(false);
    expect(sliceFits({ ...meta, version: "v2" }, record, 2)).toBe(false);
    expect(sliceFits({ ...meta, etag: '"f"' }, record, 2)).toBe(false);
  });
});

describe("what an answer needs", () => {
  const stored: [string, string][] = [["etag", '"e"'], ["last-modified", "Mon, 01 Jun 2026 00:00:00 GMT"]];
  const need = (method: string, h: Record<string, string>) => neededBytes(method, new Headers(h), stored, 1000);

  it("nothing for HEAD, a matching conditional (304) or an unsatisfiable range (416)", () => {
    expect(need("HEAD", {})).toEqual({ kind: "none" });
    expect(need("GET", { "if-none-match": '"e"' })).toEqual({ kind: "none" });
    expect(need("GET", { range: "bytes=2000-" })).toEqual({ kind: "none" });
  });

  it("the whole body, one range, or several ranges; a failed If-Range means the whole body", () => {
    expect(need("GET", {})).toEqual({ kind: "span", start: 0, end: 999 });
    expect(need("GET", { range: "bytes=-10" })).toEqual({ kind: "span", start: 990, end: 999 });
    expect(need("GET", { range: "bytes=5-9", "if-range": '"e"' })).toEqual({ kind: "span", start: 5, end: 9 });
    expect(need("GET", { range: "bytes=5-9", "if-range": '"old"' })).toEqual({ kind: "span", start: 0, end: 999 });
    expect(need("GET", { range: "bytes=0-1,10-11" })).toEqual({ kind: "ranges", ranges: [{ start: 0, end: 1 }, { start: 10, end: 11 }] });
  });

  it("probes an unknown object at its first wanted byte (0 for suffix ranges)", () => {
    expect(firstWantedByte(new Headers({ range: "bytes=123-" }))).toBe(123);
    expect(firstWantedByte(new Headers({ range: "bytes=-5" }))).toBe(0);
    expect(firstWantedByte(new Headers())).toBe(0);
  });
});
