import { describe, expect, it } from "vitest";
import { isNpmCommandLine, procStat } from "./npm-parent.ts";

describe("isNpmCommandLine", () => {
  it("knows npm by its rewritten title, its binary or its cli script", () => {
    expect(isNpmCommandLine("npm run edge")).toBe(true);
    expect(isNpmCommandLine("npm exec vitest run\0")).toBe(true);
    expect(isNpmCommandLine("/usr/bin/npm\0run\0edge\0")).toBe(true);
    expect(isNpmCommandLine("/usr/bin/node\0/usr/lib/node_modules/npm/bin/npm-cli.js\0run\0edge\0")).toBe(true);
  });

  it("is not fooled by a shell or node running something else", () => {
    expect(isNpmCommandLine("sh\0-c\0node scripts/edge.ts\0")).toBe(false);
    expect(isNpmCommandLine("/usr/bin/node\0scripts/npm-like.ts\0")).toBe(false);
    expect(isNpmCommandLine("")).toBe(false);
  });
});

describe("procStat", () => {
  it("reads this process: running, its parent, a start time", () => {
    const s = procStat(process.pid)!;
    expect(s.state).toMatch(/^[RS]$/);
    expect(s.ppid).toBe(process.ppid);
    expect(s.start).toMatch(/^\d+$/);
  });

  it("answers undefined for no such process", () => {
    expect(procStat(2 ** 22 + 1)).toBeUndefined();
  });
});
