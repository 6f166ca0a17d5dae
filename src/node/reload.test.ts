import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { restartOnlyChanges } from "./reload.ts";

describe("edge reload", () => {
  it("names the fields only a restart applies, and nothing for rules and origins", () => {
    const a = parseConfig(`[edge]\norigin = "http://a"\nstore_max_bytes = 2000000\n[[rules]]\npath = "/x/**"\nttl = { "200" = 5 }`);
    const b = parseConfig(`[edge]\norigin = "http://b"\nstore_max_bytes = 2000000\n[[rules]]\npath = "/x/**"\nttl = { "200" = 50 }`);
    expect(restartOnlyChanges(a, b)).toEqual([]);
    const c = parseConfig(`[edge]\norigin = "http://b"\nstore_max_bytes = 3000000\nprocesses = 2\n[geoip]\ncity = "x.mmdb"`);
    expect(restartOnlyChanges(a, c)).toEqual(["edge.store_max_bytes", "edge.processes", "geoip"]);
  });
});
