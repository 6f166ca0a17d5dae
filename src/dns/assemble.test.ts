import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";
import { assemble, NONE } from "./assemble.ts";
import { TYPE } from "./codes.ts";
import { encodeName } from "./names.ts";
import { rrTail } from "./records.ts";
import { readQuestion } from "./wire.ts";

const query = Buffer.from(dnsPacket.encode({ type: "query", id: 77, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: "WWW.Geo.example.org", type: "A" }] }));
const head = { query, flags: 0x0100, udpSize: 1232, q: readQuestion(query) };
const a = (n: number) => rrTail(TYPE.A, 30, Uint8Array.from([192, 0, 2, n]));

describe("reply assembly", () => {
  it("compresses owners: the query's name, and other names' suffixes found in the question", () => {
    const bytes = assemble(head, {
      rcode: 0,
      aa: true,
      answers: [{ owner: null, tail: a(1) }],
      director: [a(2), a(3)],
      directorOwner: encodeName("director.geo.example.org"),
      authorities: [{ owner: encodeName("geo.example.org"), tail: a(4) }],
      additionals: [{ owner: encodeName("ns1.example.com"), tail: a(5) }, { owner: encodeName("NS1.example.com"), tail: a(6) }],
      edns: { version: 0 },
    });
    const p = dnsPacket.decode(Buffer.from(bytes));
    expect(p.id).toBe(77);
    expect(p.answers!.map((r) => [r.name, (r as { data: string }).data])).toEqual([
      ["WWW.Geo.example.org", "192.0.2.1"],
      ["director.Geo.example.org", "192.0.2.2"], // the suffix comes from the question, its case too
      ["director.Geo.example.org", "192.0.2.3"],
    ]);
    expect(p.authorities![0]!.name).toBe("Geo.example.org");
    expect(p.additionals!.slice(0, 2).map((r) => r.name)).toEqual(["ns1.example.com", "NS1.example.com"]);
    // Header, question (21 + 4), then owner + 14 per record: 2, 9 + 2, 2 (the same owner again), 2, 17 and 17 (not in
    // the question, and another name object); the OPT.
    expect(bytes.length).toBe(12 + 25 + 16 + 25 + 16 + 16 + 31 + 31 + 11);
  });

  it("writes an error reply with the question and no records", () => {
    const p = dnsPacket.decode(Buffer.from(assemble(head, { rcode: 5, aa: false, answers: NONE, directorOwner: null, authorities: NONE, additionals: NONE })));
    expect([p.id, (p as { rcode?: string }).rcode, p.flag_aa, p.flag_rd, p.questions![0]!.name]).toEqual([77, "REFUSED", false, true, "WWW.Geo.example.org"]);
  });
});
