import { Buffer } from "node:buffer";
import * as dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";
import { encodeClientSubnet, parseClientSubnet } from "./ecs.ts";
import { readQuestion, requestedUdpSize, truncateAnswer } from "./wire.ts";

const msg = (o: Partial<dnsPacket.Packet>) => dnsPacket.encode({ type: "query", id: 1, questions: [{ name: "a.Example", type: "A" }], ...o });

describe("wire", () => {
  it("reads the question as sent and rejects compression in it", () => {
    const q = readQuestion(msg({}))!;
    expect(q.labels).toEqual(["a", "Example"]);
    expect([q.qtype, q.qclass]).toEqual([1, 1]);
    const bad = Buffer.from(msg({}));
    bad[12] = 0xc0;
    expect(readQuestion(bad)).toBeNull();
    expect(readQuestion(bad.subarray(0, 15))).toBeNull();
  });

  it("finds the EDNS payload size (512 without OPT)", () => {
    expect(requestedUdpSize(msg({}))).toBe(512);
    expect(requestedUdpSize(msg({ additionals: [{ name: ".", type: "OPT", udpPayloadSize: 4000, flags: 0, options: [] } as never] }))).toBe(4000);
    expect(requestedUdpSize(msg({ additionals: [{ name: ".", type: "OPT", udpPayloadSize: 100, flags: 0, options: [] } as never] }))).toBe(512);
  });

  it("truncates to header, question and OPT with TC=1", () => {
    const big = dnsPacket.encode({
      type: "response", id: 9, questions: [{ name: "a.Example", type: "TXT" }],
      answers: [{ name: "a.Example", type: "TXT", ttl: 1, data: ["x".repeat(255), "y".repeat(255), "z".repeat(100)] }],
      additionals: [{ name: ".", type: "OPT", udpPayloadSize: 1232, flags: 0, options: [] } as never],
    });
    expect(truncateAnswer(big, 4096)).toBe(big);
    const cut = dnsPacket.decode(Buffer.from(truncateAnswer(big, 512)));
    expect(cut.flag_tc).toBe(true);
    expect(cut.id).toBe(9);
    expect(cut.answers).toHaveLength(0);
    expect(cut.questions![0].name).toBe("a.Example");
    expect(cut.additionals![0].type).toBe("OPT");
  });
});

describe("ECS", () => {
  it("parses and echoes FAMILY/SOURCE/ADDRESS with our SCOPE", () => {
    const ecs = parseClientSubnet(Uint8Array.from([0, 1, 24, 0, 81, 2, 69]));
    expect(ecs).toMatchObject({ family: 1, source: 24, address: Uint8Array.from([81, 2, 69, 0]) });
    expect([...encodeClientSubnet(ecs as never, 16)]).toEqual([0, 1, 24, 16, 81, 2, 69]);
    expect(parseClientSubnet(Uint8Array.from([0, 2, 0, 0]))).toMatchObject({ family: 2, source: 0, address: new Uint8Array(16) });
  });

  it("rejects malformed options", () => {
    for (const bad of [[0, 3, 0, 0], [0, 1, 33, 0, 1, 2, 3, 4, 5], [0, 1, 24, 0, 81, 2], [0, 1, 23, 0, 81, 2, 69], [0, 1, 24, 8, 81, 2, 69], [0, 1]])
      expect(parseClientSubnet(Uint8Array.from(bad))).toBe("malformed");
  });
});
