import { describe, expect, it } from "vitest";
import { nkeyAuthorization, parseUsers, permissionsOf } from "./credentials.ts";

const NKEY = "U" + "A".repeat(55);

describe("permissionsOf", () => {
  it("lets a box publish only its own heartbeat, drain and status besides the JetStream API, never a stream change", () => {
    const p = permissionsOf({ name: "eu.lon", role: "box" }, "parrot")!;
    expect(p.publish.allow).toEqual(["$JS.API.>", "$JS.ACK.>", "parrot.presence.eu_2elon", "parrot.control.drain.eu_2elon", "$KV.parrot_fleet.box.eu_2elon", "$KV.parrot_fleet.xkey.eu_2elon", "$KV.parrot_fleet.geoip-at.edge.eu_2elon"]);
    expect(p.publish.allow.some((s) => s.startsWith("parrot.control.purge") || s.includes("rollout") || s.includes("config") || s.includes("cert"))).toBe(false);
    expect(permissionsOf({ name: "eu.lon", role: "issuer" }, "parrot")!.publish.allow).toContain("$KV.parrot_fleet.cert.*");
    expect(p.publish.deny).toEqual(expect.arrayContaining(["$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.PURGE.>"]));
    expect(permissionsOf({ name: "ns1", role: "dns" }, "parrot")!.publish.allow).toEqual(["$JS.API.>", "$KV.parrot_fleet.geoip-at.dns.ns1"]);
    expect(permissionsOf({ name: "operator", role: "operator" }, "parrot")).toBeUndefined();
  });

  it("lets a redirector box write its own heartbeat and mirror states in the redirectors' bucket, nothing else", () => {
    const p = permissionsOf({ name: "rd.1", role: "redirector" }, "parrot")!;
    expect(p.publish.allow).toEqual(["$JS.API.>", "$KV.parrot_mirrors.box.rd_2e1", "$KV.parrot_mirrors.mirror.*"]);
    expect(p.publish.deny).toEqual(expect.arrayContaining(["$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.PURGE.>"]));
    expect(p.subscribe.allow).toEqual(["_INBOX.>"]);
  });
});

describe("nkeyAuthorization", () => {
  it("writes one user per key, the operator without limits", () => {
    const text = nkeyAuthorization([{ name: "operator", role: "operator", nkey: NKEY }, { name: "a", role: "box", nkey: NKEY }], "parrot").join("\n");
    expect(text).toContain(`{ nkey: "${NKEY}" }`);
    expect(text).toContain(`publish: { allow: ["$JS.API.>", "$JS.ACK.>", "parrot.presence.a", "parrot.control.drain.a", "$KV.parrot_fleet.box.a", "$KV.parrot_fleet.xkey.a", "$KV.parrot_fleet.geoip-at.edge.a"]`);
  });
});

describe("parseUsers", () => {
  it("names the entry and field that is wrong", () => {
    expect(parseUsers(JSON.stringify([{ name: "a", role: "box", nkey: NKEY }]), "u.json")).toHaveLength(1);
    expect(() => parseUsers(JSON.stringify([{ name: "a", role: "admin", nkey: NKEY }]), "u.json")).toThrow("u.json[0].role: box, issuer, dns, redirector or operator");
    expect(() => parseUsers(JSON.stringify([{ name: "a", role: "box", nkey: "SUA" }]), "u.json")).toThrow(/u.json\[0\].nkey/);
  });
});
