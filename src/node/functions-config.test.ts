import { describe, expect, it } from "vitest";
import { functionProcessConfig, parseSecrets } from "./functions-config.ts";

describe("a function process's workerd config", () => {
  const text = functionProcessConfig({
    id: "www",
    compatibilityDate: "2026-11-01",
    compatibilityFlags: ["nodejs_compat"],
    files: { harness: "harness.js", module: "function.js" },
    address: "unix:/run/fn/www.sock",
    engineAddress: "unix:/run/fn/engine.sock",
    identity: "www 0a1b",
    vars: { GREETING: "hi", KEY: "from vars" },
    secrets: { KEY: 'se"cret' },
    memoryMb: 64,
  });
  it("the function's only way out is the edge's socket for functions, its identity injected in every request", () => {
    expect(text).toMatch(/globalOutbound = "engine"/);
    expect(text).toContain('(name = "engine", external = (address = "unix:/run/fn/engine.sock", http = (style = proxy, injectRequestHeaders = [(name = "x-parrot-function", value = "www 0a1b")])))');
    expect(text).not.toMatch(/network =/);
  });
  it("request.cf only from its own socket's internal header; the heap bounded", () => {
    expect(text).toMatch(/address = "unix:\/run\/fn\/www.sock", http = \(cfBlobHeader = "x-parrot-cf"/);
    expect(text).toContain('v8Flags = ["--max-old-space-size=64"]');
  });
  it("its vars and secrets as text bindings (a secret wins over a var of the same name), escaped", () => {
    expect(text).toContain('(name = "GREETING", text = "hi")');
    expect(text).toContain('(name = "KEY", text = "se\\"cret")');
    expect(text).not.toContain("from vars");
  });
});

describe("secrets files (wrangler's .dev.vars)", () => {
  it("NAME=value lines, comments, quotes", () => {
    expect(parseSecrets('# c\nA=1\nB = "two words"\n\nC=\'x=y\'\n', "s")).toEqual({ A: "1", B: "two words", C: "x=y" });
  });
  it("a bad line is named", () => {
    expect(() => parseSecrets("A=1\nnot a line\n", "prod.secrets")).toThrow("prod.secrets:2: expected NAME=value");
  });
});
