import { describe, expect, it } from "vitest";
import { controlNames, encodeMessage, nameToken, parseControlMessage, parsePresence, splitPurge, type PresenceReport } from "./messages.ts";

describe("names", () => {
  it("puts every edge name into one subject token, unambiguously", () => {
    expect(nameToken("eu-lon")).toBe("eu-lon");
    expect(nameToken("edge.lon")).toBe("edge_2elon");
    expect(nameToken("edge_2elon")).toBe("edge_5f2elon");
    const n = controlNames("parrot");
    expect([n.controlStream, n.presenceStream, n.purgeSubject, n.drainSubject("a.b"), n.presenceSubject("a"), n.durable("a.b")]).toEqual([
      "PARROT_CONTROL",
      "PARROT_PRESENCE",
      "parrot.control.purge",
      "parrot.control.drain.a_2eb",
      "parrot.presence.a",
      "edge_a_2eb",
    ]);
  });
});

describe("control messages", () => {
  it("round-trips purges (with targets) and drains", () => {
    const purge = { kind: "purge" as const, request: { urls: ["https://www.example.org/a"], soft: true }, targets: ["eu-lon"], at: 5 };
    expect(parseControlMessage(encodeMessage(purge))).toEqual(purge);
    const drain = { kind: "drain" as const, edge: "eu-lon", draining: true, at: 6 };
    expect(parseControlMessage(encodeMessage(drain))).toEqual(drain);
  });

  it("refuses malformed messages with the reason", () => {
    expect(parseControlMessage("{")).toBe("not JSON");
    expect(parseControlMessage("[1]")).toBe("not a JSON object");
    expect(parseControlMessage('{"v":2,"kind":"purge"}')).toBe("unknown version 2");
    expect(parseControlMessage('{"v":1,"kind":"purge","at":1,"request":{"urls":["ftp://x"]}}')).toMatch(/^request: "urls" must hold absolute http\(s\) URLs/);
    expect(parseControlMessage('{"v":1,"kind":"purge","at":1,"request":{}}')).toMatch(/^request: nothing to purge/);
    expect(parseControlMessage('{"v":1,"kind":"purge","at":1,"request":{"all":true,"fanout":true}}')).toBe('request: "fanout" has no meaning here');
    expect(parseControlMessage('{"v":1,"kind":"purge","at":1,"request":{"all":true},"targets":[]}')).toBe('"targets" must be a non-empty list of edge names');
    expect(parseControlMessage('{"v":1,"kind":"purge","at":1,"request":{"all":true},"extra":1}')).toBe('unknown field "extra"');
    expect(parseControlMessage('{"v":1,"kind":"drain","at":1,"edge":"a b","draining":true}')).toBe('"edge" must be an edge name');
    expect(parseControlMessage('{"v":1,"kind":"drain","at":-1,"edge":"a","draining":true}')).toBe('"at" must be a time in ms');
    expect(parseControlMessage('{"v":1,"kind":"reboot","at":1}')).toBe('unknown kind "reboot"');
  });

  it("round-trips presence reports and refuses bad ones", () => {
    const r: PresenceReport = { edge: "a", boot: "1-00", stream: "2026-01-01T00:00:00Z", seq: 4, caughtUp: true, health: "ok", state: "running", at: 9 };
    expect(parsePresence(encodeMessage(r))).toEqual(r);
    expect(parsePresence(JSON.stringify({ ...r, v: 1, seq: -1 }))).toBe('"seq" must be a stream sequence');
    expect(parsePresence(JSON.stringify({ ...r, v: 1, state: "gone" }))).toBe('"state" must be "running" or "stopped"');
    // The box's anycast announcement rides along when it has one (its drain is its health: "draining").
    const withAnycast: PresenceReport = { ...r, health: "draining", anycast: "withdrawn" };
    expect(parsePresence(encodeMessage(withAnycast))).toEqual(withAnycast);
    expect(parsePresence(JSON.stringify({ ...r, v: 1, anycast: "maybe" }))).toBe('"anycast" must be "announced" or "withdrawn"');
  });
});

describe("splitPurge", () => {
  it("keeps a small purge as one message", () => {
    expect(splitPurge({ urls: ["https://a/1"], all: true, soft: true })).toEqual([{ urls: ["https://a/1"], all: true, soft: true }]);
  });

  it("splits a large purge into messages under the limit, every item once, soft on every part", () => {
    const urls = Array.from({ length: 1000 }, (_, i) => `https://www.example.org/${"x".repeat(200)}/${i}`);
    const tags = Array.from({ length: 1000 }, (_, i) => `tag-${i}`);
    const parts = splitPurge({ urls, tags, soft: true }, 64 * 1024) as { urls?: string[]; tags?: string[]; soft?: boolean }[];
    expect(parts.length).toBeGreaterThan(3);
    for (const p of parts) {
      expect(new TextEncoder().encode(JSON.stringify({ v: 1, kind: "purge", at: Date.now(), request: p })).length).toBeLessThan(64 * 1024);
      expect(p.soft).toBe(true);
    }
    expect(parts.flatMap((p) => p.urls ?? [])).toEqual(urls);
    expect(parts.flatMap((p) => p.tags ?? [])).toEqual(tags);
  });

  it("refuses a selector too long for any message", () => {
    expect(splitPurge({ tags: ["t".repeat(20_000)] })).toMatch(/"tags" is longer than/);
  });
});
