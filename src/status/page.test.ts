import { describe, expect, it } from "vitest";
import { renderStatusPage } from "./page.ts";

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
        { name: "eu<lon>", lat: 51.5, lon: -0.1, state: "up", since: 0, drained: false, answers: 7, hitRatio: 0.5, requests: 10, anycast: "announced", control: "current" },
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
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3)/);
  });
});
