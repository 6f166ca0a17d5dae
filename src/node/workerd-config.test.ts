/** The bare workerd config generator: config in, capnp text out. */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/config.ts";
import { capnpString, originIsPrivate, workerdEdgeConfig, workerdStoreConfig } from "./workerd-config.ts";

function gen(edgeToml: string, extra: Partial<Parameters<typeof workerdEdgeConfig>[0]> = {}) {
  const text = `[edge]\nname = "e1"\n${edgeToml}\n`;
  return workerdEdgeConfig({
    compatibilityDate: "2026-11-01",
    compatibilityFlags: ["nodejs_compat"],
    edge: parseConfig(text).edge!,
    configText: text,
    files: { edge: "edge.js", store: "store.js", index: "index.json" },
    storeDir: "/var/cache/parrot",
    store: { maxBytes: 1 << 30, inactiveSeconds: 3600 },
    ...extra,
  });
}

describe("workerd config", () => {
  it("a public origin: only public addresses, cache API to the store, no cfBlobHeader", () => {
    const c = gen('origin = "https://origin.example.org"', { address: "0.0.0.0:80" });
    expect(c).toContain('network = (allow = ["public"]');
    expect(c).toContain('cacheApiOutbound = "store"');
    expect(c).toContain('globalOutbound = "origin-net"');
    expect(c).toContain('compatibilityDate = "2026-11-01"');
    expect(c).toContain('compatibilityFlags = ["nodejs_compat"]');
    expect(c).toContain('(name = "http", address = "0.0.0.0:80", http = (), service = "edge")');
    expect(c).toContain('disk = (path = "/var/cache/parrot", writable = true)');
    expect(c).toContain('(name = "STORE", json = "{\\"maxBytes\\":1073741824,\\"inactiveSeconds\\":3600}")');
    expect(c).not.toMatch(/cfBlobHeader/);
  });

  it("with [[functions]]: a binding FN_<k> per slot, the key and public addresses for the functions' gate, their way back in on a socket of its own (proxy style, no cfBlobHeader on the edge)", () => {
    const c = gen('origin = "https://origin.example.org"', { functionSlots: ["unix:/run/fn/slot-0.sock", "unix:/run/fn/slot-1.sock"], functionKey: "k3y" });
    expect(c).toContain('(name = "fn-1", external = (address = "unix:/run/fn/slot-1.sock", http = ())),');
    expect(c).toContain('(name = "FN_0", service = "fn-0")');
    expect(c).toContain('(name = "FN_1", service = "fn-1")');
    expect(c).toContain('(name = "FUNCTION_KEY", text = "k3y")');
    expect(c).toContain('(name = "fn-internet", network = (allow = ["public"]');
    expect(c).toContain('(name = "functions", http = (style = proxy), service = (name = "edge", entrypoint = "fromFunction")),');
    expect(c).not.toMatch(/cfBlobHeader/);
    expect(gen('origin = "https://origin.example.org"')).not.toMatch(/fromFunction|FN_|FUNCTION_/);
  });

  it("with [control]: the box's agent as an external service bound as CONTROL, and the box start id as BOOT_ID", () => {
    const c = gen('origin = "https://origin.example.org"', { control: { address: "unix:/var/cache/parrot/.run/control.sock", bootId: "1-00" } });
    expect(c).toContain('(name = "control", external = (address = "unix:/var/cache/parrot/.run/control.sock", http = ())),');
    expect(c).toContain('(name = "CONTROL", service = "control")');
    expect(c).toContain('(name = "BOOT_ID", text = "1-00")');
    expect(gen('origin = "https://origin.example.org"')).not.toMatch(/CONTROL|BOOT_ID/);
  });

  it("a shield on a private address is reachable even when the origin is public", () => {
    const c = gen('origin = "https://origin.example.org"\nshields = [ { name = "shield-a", url = "http://10.0.0.2:8080" } ]');
    expect(c).toContain('allow = ["public", "private"]');
  });

  it("a loopback or private origin also allows private addresses", () => {
    for (const o of ["http://127.0.0.1:8080", "http://10.1.2.3", "http://[::1]:81", "http://localhost:8080", "http://192.168.1.1"]) {
      expect(gen(`origin = "${o}"`)).toContain('allow = ["public", "private"]');
    }
    expect(originIsPrivate("http://8.8.8.8")).toBe(false);
    const several = '[[edge.origins]]\nurl = "https://a.example"\n[[edge.origins]]\nurl = "http://10.0.0.9"\npriority = 1';
    expect(gen(several)).toContain('allow = ["public", "private"]');
    expect(gen('[[edge.origins]]\nurl = "https://a.example"')).toContain('allow = ["public"]');
    expect(originIsPrivate("http://[2001:db8::1]")).toBe(false);
  });

  it("HTTPS with the configured keypair; the socket can come from --socket-fd", () => {
    const c = gen('origin = "https://o.example"', { files: { edge: "edge.js", store: "store.js", index: "index.json", tlsCert: "tls.crt", tlsKey: "tls.key" } });
    expect(c).toContain('(name = "http", https = (options = (), tlsOptions = (keypair = (privateKey = embed "tls.key", certificateChain = embed "tls.crt"))), service = "edge")');
  });

  it("quotes the config text safely", () => {
    expect(capnpString('a"b\\c\nd\u0001')).toBe('"a\\"b\\\\c\\nd\\x01"');
    const c = gen('origin = "https://o.example"\n# "quoted" \\ back');
    expect(c).toContain('\\"quoted\\" \\\\ back');
  });

  it("one process: the edge's STORE binding is the in-process store; GeoIP files become Data bindings", () => {
    const c = gen('origin = "https://o.example"', { geoip: { GEOIP_CITY: "geoip_city.bin", GEOIP_ASN: "geoip_asn.bin" } });
    expect(c).toContain('(name = "store", worker = .storeWorker)');
    expect(c).toContain('(name = "STORE", service = "store")');
    expect(c).toContain('(name = "GEOIP_CITY", data = embed "geoip_city.bin")');
    expect(c).toContain('(name = "GEOIP_ASN", data = embed "geoip_asn.bin")');
    expect(c).not.toContain("GEOIP_CITY_V6");
    expect(c).not.toContain("STORE_LOCKS");
    expect(gen('origin = "https://o.example"')).not.toContain("GEOIP");
  });

  it("several processes: the edges reach the store process over its socket; the store config listens there only", () => {
    const c = gen('origin = "https://o.example"', { storeAddress: "unix:/var/cache/parrot/.run/store.sock" });
    expect(c).toContain('(name = "store", external = (address = "unix:/var/cache/parrot/.run/store.sock", http = ()))');
    expect(c).toContain('cacheApiOutbound = "store"');
    expect(c).toContain('(name = "STORE", service = "store")');
    expect(c).toContain('(name = "STORE_LOCKS", json = "true")');
    expect(c).not.toContain("storeWorker");
    // The edge reads the store's files (checked bodies) but never writes them: only the store process does.
    expect(c).toContain('(name = "store-read", disk = (path = "/var/cache/parrot"))');
    expect(c).toContain('(name = "STORE_DISK", service = "store-read")');
    expect(c).not.toContain("writable");
    const s = workerdStoreConfig({
      compatibilityDate: "2026-11-01",
      files: { edge: "edge.js", store: "store.js", index: "index.json" },
      store: { maxBytes: 1 << 30, inactiveSeconds: 3600 },
      storeDir: "/var/cache/parrot",
      address: "unix:/var/cache/parrot/.run/store.sock",
    });
    expect(s).toContain('(name = "store", address = "unix:/var/cache/parrot/.run/store.sock", http = (), service = "store")');
    expect(s).toContain('disk = (path = "/var/cache/parrot", writable = true)');
    expect(s).toContain('(name = "STORE_INDEX", json = embed "index.json")');
    expect(s).not.toContain("edgeWorker");
  });
});
