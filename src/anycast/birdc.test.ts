import { describe, expect, it } from "vitest";
import { bgpState, parseProtocols, parseRoutes } from "./birdc.ts";

// As BIRD 2.0.12 prints them (with `timeformat protocol iso long`).
const PROTOCOLS = `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-12-01 12:01:24  
anycast4   Static     master4    up     2026-12-01 12:02:45  
anycast6   Static     master6    down   2026-12-01 12:02:45  
peer_r1    BGP        ---        up     2026-12-01 12:01:28  Established   
peer_r2    BGP        ---        start  2026-12-01 12:01:24  Active        Socket: Connection closed
peer_r3    BGP        ---        down   2026-12-01 12:00:57  
`;

const ROUTES = `BIRD 2.0.12 ready.
Table master4:
198.51.100.0/24      unreachable [box 12:01:11.171 from 127.0.0.11] * (100) [AS64512i]
	Type: BGP univ
	BGP.origin: IGP
	BGP.as_path: 64512 64512
	BGP.next_hop: 127.0.0.11
	BGP.med: 50
	BGP.local_pref: 100
	BGP.community: (64512,100)
	BGP.large_community: (64512, 1, 2)
                     unreachable [box2 12:01:12.000 from 127.0.0.12] (100) [AS64513i]
	Type: BGP univ
	BGP.as_path: 64513
203.0.113.0/24       unreachable [box 12:01:11.171 from 127.0.0.11] * (100) [AS64512i]
	BGP.as_path: 64512

Table master6:
2001:db8:100::/48    unreachable [box6 12:01:10.708 from ::1] * (100) [AS64512i]
	BGP.as_path: 64512
`;

describe("birdc output", () => {
  it("reads show protocols: names, states and the BGP session state", () => {
    const rows = parseProtocols(PROTOCOLS);
    expect(rows.map((r) => [r.name, r.proto, r.state])).toEqual([
      ["device1", "Device", "up"],
      ["anycast4", "Static", "up"],
      ["anycast6", "Static", "down"],
      ["peer_r1", "BGP", "up"],
      ["peer_r2", "BGP", "start"],
      ["peer_r3", "BGP", "down"],
    ]);
    expect(rows[3]!.since).toBe("2026-12-01 12:01:28");
    expect(rows.slice(3).map(bgpState)).toEqual(["Established", "Active", "Down"]);
    expect(rows[4]!.info).toBe("Active        Socket: Connection closed");
  });

  it("reads nothing from an error or an empty answer", () => {
    expect(parseProtocols("BIRD 2.0.12 ready.\nsyntax error, unexpected CF_SYM_UNDEFINED\n")).toEqual([]);
    expect(parseRoutes("BIRD 2.0.12 ready.\n")).toEqual([]);
    expect(parseRoutes("BIRD 2.0.12 ready.\nNetwork not found\n")).toEqual([]);
  });

  it("reads show route all: every route of every table with its BGP attributes", () => {
    const routes = parseRoutes(ROUTES);
    expect(routes.map((r) => [r.prefix, r.protocol])).toEqual([
      ["198.51.100.0/24", "box"],
      ["198.51.100.0/24", "box2"],
      ["203.0.113.0/24", "box"],
      ["2001:db8:100::/48", "box6"],
    ]);
    expect(routes[0]!.attributes).toEqual({
      Type: "BGP univ",
      origin: "IGP",
      as_path: "64512 64512",
      next_hop: "127.0.0.11",
      med: "50",
      local_pref: "100",
      community: "(64512,100)",
      large_community: "(64512, 1, 2)",
    });
    expect(routes[1]!.attributes.as_path).toBe("64513");
  });
});
