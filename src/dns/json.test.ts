import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";
import { jsonAnswer, jsonQuery } from "./json.ts";

describe("the JSON API", () => {
  it("builds a wire query with the type and the ECS option", () => {
    const q = jsonQuery("Director.geo.example.org.", "aaaa", "81.2.69.142/24") as Uint8Array;
    const p = dnsPacket.decode(Buffer.from(q));
    expect(p.questions).toEqual([{ name: "Director.geo.example.org", type: "AAAA", class: "IN" }]);
    const opt = p.additionals![0] as unknown as { options: { code: number; ip: string; sourcePrefixLength: number }[] };
    expect(opt.options[0]).toMatchObject({ code: 8, ip: "81.2.69.0", sourcePrefixLength: 24 });
    expect(dnsPacket.decode(Buffer.from(jsonQuery("a.example", "65280", undefined) as Uint8Array)).questions![0]!.type).toBe("UNKNOWN_65280");
  });

  it("says why a query is bad", () => {
    expect(jsonQuery(undefined, "A", undefined)).toBe("name missing or invalid");
    expect(jsonQuery("a..b", "A", undefined)).toBe("name has an empty or long label");
    expect(jsonQuery("a.b", "NOPE", undefined)).toBe("unknown type");
    expect(jsonQuery("a.b", "A", "1.2.3.4/40")).toBe("edns_client_subnet must be an address/prefix");
  });

  it("turns a wire answer into the Google/Cloudflare JSON shape", () => {
    const wire = dnsPacket.encode({
      type: "response",
      id: 0,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHORITATIVE_ANSWER | 3, // RCODE NXDOMAIN
      questions: [{ name: "nope.example", type: "A" }],
      authorities: [{ name: "example", type: "SOA", ttl: 30, data: { mname: "ns1.example", rname: "h.example", serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5 } }],
    } as never);
    expect(jsonAnswer(wire)).toEqual({
      Status: 3, TC: false, RD: true, RA: false, AD: false, CD: false,
      Question: [{ name: "nope.example.", type: 1 }],
      Authority: [{ name: "example.", type: 6, TTL: 30, data: "ns1.example. h.example. 1 2 3 4 5" }],
    });
  });
});
