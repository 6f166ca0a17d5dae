import { describe, expect, it } from "vitest";
import { renderStatusPage } from "./page.ts";
import { tierTopology } from "./tiers.ts";
import { parseMirrorsStatus } from "../contracts/mirrors-status.ts";

describe("status page", () => {
  it("says when the director answers its fallback addresses", () => {
    const html = renderStatusPage({ zone: "z", node: "n", generatedAt: 0, failOpen: false, fallback: true, queries: 0, edges: [] });
    expect(html).toContain("fallback (anycast) addresses");
    expect(html).not.toContain("fail-open");
  });

  it("lists every edge with its state, escapes names and warns on fail-open", () => {
    const html = renderStatusPage({
      zone: "geo.example.org",
      node: "dns-1",
      generatedAt: 60_000,
      failOpen: true,
      queries: 12,
      edges: [
        { name: "eu<lon>", lat: 51.5, lon: -0.1, state: "up", since: 0, drained: false, answers: 7, hitRatio: 0.5, requests: 10, anycast: "announced", control: "current", heartbeat: "draining, withdrawn, 0.4 s ago" },
        { name: "na-sfo", url: "http://na", lat: 37.8, lon: -122.4, state: "down", since: 30_000, detail: "timed out", drained: false, answers: 0, inAnswers: false, control: "cut-off" },
      ],
    });
    expect(html).toContain('data-edge="eu&#60;lon&#62;" data-state="up"');
    expect(html).toContain('data-edge="na-sfo" data-state="down"');
    expect(html).toContain("50.0 %");
    expect(html).toContain("fail-open");
    expect(html).toContain("not probed (no url)"); // eu<lon> has no url
    expect(html).toContain('<td class="in">no</td>');
    expect(html).toContain('<td class="anycast">announced</td>');
    expect(html).toContain('<td class="anycast">-</td>');
    expect(html).toContain('<td class="control">current</td>');
    expect(html).toContain('<td class="control warn">cut-off</td>');
    expect(html).toContain('<td class="heartbeat">draining, withdrawn, 0.4 s ago</td>');
    expect(html).toContain('<td class="heartbeat">-</td>');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3)/);
  });

  it("shows the tier topology: each shield's URL and role, its passive health at each edge, each edge's role", () => {
    const until = Date.parse("2026-12-07T19:00:10Z");
    const { roles, shields } = tierTopology([
      // eu-lon names itself (one fleet-wide list): it is a shield too, and its own entry is no health of it.
      { name: "eu-lon", shields: [{ name: "eu-lon", url: "http://10.0.0.1:8787" }, { name: "shield-fra", url: "http://10.0.0.2:8787", skippedUntil: until }] },
      { name: "na-sfo", shields: [{ name: "eu-lon", url: "http://10.0.0.1:8787" }, { name: "shield-fra", url: "http://10.0.0.2:8787" }] },
      { name: "ap-syd" }, // no shields, or its metrics could not be read
    ]);
    expect([...roles]).toEqual([["eu-lon", "both"], ["na-sfo", "edge"], ["ap-syd", "edge"]]);
    expect(shields).toEqual([
      { name: "eu-lon", urls: ["http://10.0.0.1:8787"], role: "both", upAt: ["na-sfo"], skippedBy: [] },
      { name: "shield-fra", urls: ["http://10.0.0.2:8787"], role: "shield", upAt: ["na-sfo"], skippedBy: [{ edge: "eu-lon", until }] },
    ]);
    const html = renderStatusPage({
      zone: "z",
      node: "n",
      generatedAt: 0,
      failOpen: false,
      queries: 0,
      edges: [
        { name: "eu-lon", lat: 51.5, lon: -0.1, state: "up", since: 0, drained: false, answers: 0, tier: roles.get("eu-lon") },
        { name: "ap-syd", lat: -33.9, lon: 151.2, state: "up", since: 0, drained: false, answers: 0 },
      ],
      shields,
    });
    expect(html).toContain('<td class="tier">both</td>');
    expect(html).toContain('<td class="tier">–</td>');
    expect(html).toContain("<h2>Tiered cache</h2>");
    expect(html).toContain('data-shield="shield-fra" data-state="partly skipped"');
    expect(html).toContain("<td>http://10.0.0.2:8787</td>");
    expect(html).toContain('<td class="role">shield</td>');
    expect(html).toContain("skipped by eu-lon until 2026-12-07T19:00:10.000Z; up at na-sfo");
    expect(html).toContain('data-shield="eu-lon" data-state="up"');
    // Without shields, no section.
    expect(renderStatusPage({ zone: "z", node: "n", generatedAt: 0, failOpen: false, queries: 0, edges: [] })).not.toContain("Tiered cache");
  });

  it("shows the redirector's mirrors, escaped, from a document checked field by field, or why it has none", () => {
    const doc = parseMirrorsStatus({
      files: 10,
      origin: { read: "2026-12-07T19:59:00Z" },
      mirrors: [
        { name: "gb<1>", url: "http://gb.example/", country: "GB", enabled: true, maintenance: false, up: true, failures: 0, synced: true, lastScan: "2026-12-07T19:59:30Z", carried: 10, present: 9, absent: 1, wrong: 0, unknown: 0 },
        { name: "us", url: "http://us.example/", enabled: true, maintenance: false, up: false, failures: 3, error: "timed out", carried: 10, present: 0, absent: 0, wrong: 0, unknown: 10 },
        { url: "no name: left out" },
        { name: "evil", failures: -5, carried: "lots", enabled: "yes" },
      ],
    })!;
    expect(doc.mirrors.map((m) => m.name)).toEqual(["gb<1>", "us", "evil"]);
    expect(doc.mirrors[2]).toMatchObject({ failures: 0, carried: 0, enabled: false, up: false });
    expect(parseMirrorsStatus({ mirrors: "none" })).toBeUndefined();
    const now = Date.parse("2026-12-07T20:00:00Z");
    const html = renderStatusPage({ zone: "z", node: "n", generatedAt: now, failOpen: false, queries: 0, edges: [], mirrors: doc });
    expect(html).toContain('data-mirror="gb&#60;1&#62;" data-state="up"');
    expect(html).toContain("9 of 10 up to date, 1 missing");
    expect(html).toContain("30 s ago");
    expect(html).toMatch(/data-mirror="us" data-state="down"[\s\S]*?down: 3 failures \(timed out\)[\s\S]*?0 of 10 up to date, 10 unchecked/);
    expect(html).toContain('data-mirror="evil" data-state="disabled"');
    const failed = renderStatusPage({ zone: "z", node: "n", generatedAt: now, failOpen: false, queries: 0, edges: [], mirrors: { error: "the redirector did not answer" } });
    expect(failed).toMatch(/<h2>Mirrors<\/h2>\n<p class="warn">the redirector did not answer<\/p>/);
    expect(renderStatusPage({ zone: "z", node: "n", generatedAt: now, failOpen: false, queries: 0, edges: [] })).not.toContain("Mirrors");
  });
});
