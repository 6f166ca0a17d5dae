/** The health check of a DNS node (Node host): a real query over UDP, as a resolver would send it. */
import { createSocket } from "node:dgram";
import { randomInt } from "node:crypto";
import * as dnsPacket from "dns-packet";
import type { ProbeResult } from "../health/health.ts";

/** Checks a DNS node: `zone SOA` over UDP to host:port; good when answered NOERROR, authoritative, with the SOA. */
export function dnsCheck(host: string, port: number, zone: string, timeoutMs: number): () => Promise<ProbeResult> {
  return () =>
    new Promise((resolve) => {
      const id = randomInt(0, 65536);
      const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
      let finished = false;
      const done = (r: ProbeResult) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        socket.close();
        resolve(r);
      };
      const timer = setTimeout(() => done({ kind: "failed", detail: "DNS query timed out" }), timeoutMs);
      socket.on("error", (err) => done({ kind: "failed", detail: err.message }));
      socket.on("message", (msg) => {
        let answer: dnsPacket.DecodedPacket & { rcode?: string };
        try {
          answer = dnsPacket.decode(msg) as typeof answer;
        } catch {
          return; // not an answer to us; wait for ours or the timeout
        }
        if (answer.id !== id) return;
        const aa = ((answer.flags ?? 0) & dnsPacket.AUTHORITATIVE_ANSWER) !== 0;
        const soa = answer.answers?.some((a) => a.type === "SOA");
        if (answer.rcode === "NOERROR" && aa && soa) done({ kind: "ok" });
        else done({ kind: "failed", detail: `DNS answer ${answer.rcode}${aa ? "" : " not authoritative"}${soa ? "" : " without SOA"}` });
      });
      const query = dnsPacket.encode({ type: "query", id, flags: 0, questions: [{ type: "SOA", name: zone.replace(/\.$/, "") }] });
      socket.send(query, port, host);
    });
}
