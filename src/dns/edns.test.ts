import * as dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";
import { describe, expect, it } from "vitest";
import { RCODE } from "./codes.ts";
import { parseEdns } from "./edns.ts";
import { readQuestion } from "./wire.ts";

type Opt = { udpPayloadSize?: number; flags?: number; options?: unknown[] };
function query(opts: Opt[] = [], answers: unknown[] = []): Buffer {
  return Buffer.from(
    dnsPacket.encode({
      type: "query",
      id: 1,
      questions: [{ name: "a.example", type: "A" }],
      answers: answers as dnsPacket.Answer[],
      additionals: opts.map((o) => ({ name: ".", type: "OPT", udpPayloadSize: 1232, flags: 0, options: [], ...o })) as never,
    }),
  );
}
const parse = (q: Buffer) => parseEdns(q, readQuestion(q)!);

describe("EDNS in a query", () => {
  it("reads size, DO and ECS; none without an OPT", () => {
    expect(parse(query())).toEqual({ ok: true, edns: undefined });
    const r = parse(query([{ udpPayloadSize: 4096, flags: dnsPacket.DNSSEC_OK, options: [{ code: 8, ip: "81.2.69.0", sourcePrefixLength: 24, scopePrefixLength: 0 }] }]));
    expect(r).toMatchObject({ ok: true, edns: { version: 0, size: 4096, dnssecOk: true, ecs: { family: 1, source: 24, address: Uint8Array.from([81, 2, 69, 0]) } } });
    expect(parse(query([{ udpPayloadSize: 100 }]))).toMatchObject({ ok: true, edns: { size: 512, dnssecOk: false } });
  });

  it("answers FORMERR for two OPTs, an OPT among the answers, two or a malformed ECS; BADVERS above version 0", () => {
    expect(parse(query([{}, {}]))).toMatchObject({ ok: false, rcode: RCODE.FORMERR, withOpt: true });
    const misplaced = query([], [{ name: ".", type: "OPT", udpPayloadSize: 1232, flags: 0, options: [] }]);
    expect(parse(misplaced)).toMatchObject({ ok: false, rcode: RCODE.FORMERR });
    const ecs = { code: 8, ip: "81.2.69.0", sourcePrefixLength: 24, scopePrefixLength: 0 };
    expect(parse(query([{ options: [ecs, ecs] }]))).toMatchObject({ ok: false, rcode: RCODE.FORMERR, withOpt: true });
    expect(parse(query([{ options: [{ ...ecs, scopePrefixLength: 8 }] }]))).toMatchObject({ ok: false, rcode: RCODE.FORMERR });
    const v1 = query([{}]);
    v1[v1.length - 5] = 1;
    expect(parse(v1)).toMatchObject({ ok: false, rcode: RCODE.BADVERS, withOpt: true, size: 1232 });
    const cut = query([{ options: [{ code: 10, data: Buffer.alloc(8) }] }]);
    cut.writeUInt16BE(20, cut.length - 10); // an option longer than the OPT
    expect(parse(cut)).toMatchObject({ ok: false, rcode: RCODE.FORMERR });
  });
});
