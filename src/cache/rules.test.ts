import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { conditionMatches, findRule, globToRegExp, resolvedPath } from "./rules.ts";
import { primaryKey, varyFields, variantOf } from "./key.ts";

describe("operator rules", () => {
  it("matches path globs: * within a segment, ** across, /dir/** also the directory", () => {
    expect(globToRegExp("/img/**").test("/img/a/b.png")).toBe(true);
    expect(globToRegExp("/img/**").test("/img")).toBe(true);
    expect(globToRegExp("/img/**").test("/images/x")).toBe(false);
    expect(globToRegExp("/*.deb").test("/a.deb")).toBe(true);
    expect(globToRegExp("/*.deb").test("/pool/a.deb")).toBe(false);
    expect(globToRegExp("/**/by-hash/**").test("/dists/x/by-hash/SHA256/ab")).toBe(true);
    expect(globToRegExp("/a.b").test("/aXb")).toBe(false);
  });

  it("takes the first rule whose path, method and host match", () => {
    const { rules } = parseConfig(`
[edge]
origin = "http://o"
[[rules]]
path = "/api/**"
methods = ["GET"]
hosts = ["api.example.org"]
query = "drop"
[[rules]]
path = "/**"
query = "sort"`);
    expect(findRule(rules, "GET", "api.example.org:8443", "/api/x")?.query).toBe("drop");
    expect(findRule(rules, "GET", "www.example.org", "/api/x")?.query).toBe("sort");
    expect(findRule(rules, "HEAD", "api.example.org", "/api/x")?.query).toBe("sort");
  });

  it("treats a bypass condition as met when the item is present and neither empty nor 0", () => {
    const cond = { cookies: ["session"], headers: ["x-debug"], args: ["nocache"] };
    const check = (url: string, headers: Record<string, string> = {}) =>
      conditionMatches(cond, new Request(url, { headers }), new URL(url));
    expect(check("http://h/?nocache=1")).toBe(true);
    expect(check("http://h/?nocache=0")).toBe(false);
    expect(check("http://h/?nocache=")).toBe(false);
    expect(check("http://h/", { cookie: "a=1; session=xyz" })).toBe(true);
    expect(check("http://h/", { cookie: "sessionx=1" })).toBe(false);
    expect(check("http://h/", { "x-debug": "yes" })).toBe(true);
  });
});

describe("cache keys", () => {
  it("keeps, sorts or drops the query string", () => {
    const u = new URL("http://WWW.example.org/p?b=2&a=1&a=0");
    expect(primaryKey(u)).toBe("www.example.org/p?b=2&a=1&a=0");
    expect(primaryKey(u, "sort")).toBe("www.example.org/p?a=0&a=1&b=2");
    expect(primaryKey(u, "drop")).toBe("www.example.org/p");
  });

  it("normalises Vary field names and request values", () => {
    expect(varyFields("Accept-Encoding, accept-language,ACCEPT-ENCODING")).toEqual(["accept-encoding", "accept-language"]);
    expect(varyFields("accept, *")).toEqual(["*"]);
    const h = new Headers({ "accept-encoding": "gzip ,  br", "accept-language": "IT, en ;q=0.5" });
    expect(variantOf(["accept-encoding", "accept-language", "x-absent"], h)).toEqual([
      ["accept-encoding", "br"], // the coding the edge uses for it (encoding.ts)
      ["accept-language", "it,en;q=0.5"],
      ["x-absent", ""],
    ]);
  });
});

describe("paths as the origin resolves them", () => {
  it("decodes, applies dot segments and drops path parameters before matching", () => {
    expect(resolvedPath("/static/..%2faccount")).toBe("/account");
    expect(resolvedPath("/static/..%252faccount")).toBe("/account");
    expect(resolvedPath("/static/..\\account")).toBe("/account");
    expect(resolvedPath("/static/..;/account")).toBe("/account");
    expect(resolvedPath("/static//./img/logo.png")).toBe("/static/img/logo.png");
    expect(resolvedPath("/img/")).toBe("/img/");
    expect(resolvedPath("/a/b/..")).toBe("/a/");
    expect(resolvedPath("/100%")).toBe("/100%"); // malformed: kept
    expect(resolvedPath("/static/logo.png")).toBe("/static/logo.png");
  });

  it("a force_ttl rule for /static/** does not apply to /static/..%2faccount", () => {
    const rules = parseConfig(`[edge]\norigin = "http://o"\n[[rules]]\npath = "/static/**"\nforce_ttl = 600`).rules;
    expect(findRule(rules, "GET", "www.example.org", "/static/app.js")).toBeDefined();
    expect(findRule(rules, "GET", "www.example.org", "/static/..%2faccount")).toBeUndefined();
    expect(findRule(rules, "GET", "www.example.org", "/static/..%2Fstatic/app.js")).toBeDefined();
  });
});
