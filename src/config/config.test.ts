import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "./config.ts";

function problems(text: string): string[] {
  try {
    parseConfig(text, "bad.toml");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain("bad.toml");
    return (err as ConfigError).problems;
  }
  throw new Error("expected the config to be refused");
}

describe("cdn.toml", () => {
  it("accepts the embedded default", () => {
    const config = parseConfig(readFileSync(new URL("../../cdn.toml", import.meta.url), "utf8"));
    expect(config.edge?.origin).toBe("http://127.0.0.1:8080");
    expect(config.rules.length).toBeGreaterThan(0);
    expect(config.dns?.zone).toBe("geo.example.org");
  });

  it("names the field and the reason for each problem", () => {
    expect(problems('[edge]\norigin = "ftp://x"')).toEqual(["edge.origin: must be an http:// or https:// URL"]);
    expect(problems('[edge]\norigin = "http://o"\n[[rules]]\npath = "/x"\nquery = "shuffle"')[0]).toMatch(/^rules\[0\]\.query: /);
    expect(problems('[edge]\norigin = "http://o"\ntrusted_proxies = ["10.0.0.0/33"]')[0]).toBe(
      "edge.trusted_proxies[0]: not an IP address or CIDR such as 10.0.0.0/8",
    );
    expect(problems('[edge]\norigin = "http://o"\nlock_timout_ms = 5')[0]).toMatch(/^edge: Unrecognized key: "lock_timout_ms"/);
  });

  it("reports TOML syntax errors with the line", () => {
    expect(problems("[edge\norigin = 1")[0]).toMatch(/^TOML syntax \(line 1, column \d+\)/);
  });
});

describe("strict tables", () => {
  it("a mistyped key in [[edges]] is an error naming it, not silently ignored", () => {
    expect(() => parseConfig(`[[edges]]\nname = "e1"\nlat = 1\nlon = 2\nipv4 = "192.0.2.1"\nweigth = 3\n`)).toThrow(/edges\[0\]: Unrecognized key: "weigth"/);
  });
});
