import { defineConfig } from "vitest/config";
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { readFileSync } from "node:fs";
import { TEST_ZONE_TOML } from "./test/support/dns-zone.ts";

/** Loads `*.toml` imports as text, as wrangler's Text rule and esbuild's text loader do for the bundles. */
const tomlAsText = {
  name: "toml-as-text",
  load(id: string) {
    if (id.endsWith(".toml")) return `export default ${JSON.stringify(readFileSync(id, "utf8"))};`;
  },
};

export default defineConfig({
  test: {
    projects: [
      {
        // Pure logic: no runtime, fake clocks.
        plugins: [tomlAsText],
        test: { name: "unit", environment: "node", include: ["src/**/*.test.ts"] },
      },
      {
        // The edge worker inside Miniflare (workerd), against a scripted origin on a loopback port.
        plugins: [
          tomlAsText,
          cloudflareTest(async ({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              cf: false,
              bindings: { CDN_CONFIG: inject("workersEdgeConfig") },
            },
          })),
        ],
        test: {
          name: "workers",
          include: ["test/workers/**/*.test.ts"],
          globalSetup: ["test/support/workers-global-setup.ts"],
          testTimeout: 20_000,
        },
      },
      {
        // The GeoDNS worker (wrangler.toml [env.dns]) inside Miniflare: a test zone and the MaxMind test databases.
        plugins: [
          tomlAsText,
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml", environment: "dns" },
            miniflare: {
              cf: false,
              bindings: { CDN_CONFIG: TEST_ZONE_TOML },
              dataBlobBindings: {
                GEOIP_CITY: new Uint8Array(readFileSync(new URL("./test/fixtures/GeoIP2-City-Test.mmdb", import.meta.url))),
                GEOIP_ASN: new Uint8Array(readFileSync(new URL("./test/fixtures/GeoLite2-ASN-Test.mmdb", import.meta.url))),
              },
            },
          }),
        ],
        test: { name: "workers-dns", include: ["test/workers-dns/**/*.test.ts"], testTimeout: 20_000 },
      },
      {
        // Real processes (edge, DNS node, origins) and real clients over loopback.
        plugins: [tomlAsText],
        test: {
          name: "e2e",
          environment: "node",
          include: ["test/e2e/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
      {
        // The world: regions in network namespaces joined by emulated long links (test/world/world.ts); skipped
        // with the reason printed where namespaces, veth or TUN devices, or a tool it runs (BIRD, nats-server, …) are missing.
        plugins: [tomlAsText],
        test: {
          name: "world",
          environment: "node",
          include: ["test/world/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 240_000,
          fileParallelism: false,
          // After the other projects, alone: its links are a user-space emulator (at real-time priority where
          // permitted), which delays packets as configured only while it gets the CPU when they arrive.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
