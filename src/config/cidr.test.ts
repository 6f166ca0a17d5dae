import { describe, expect, it } from "vitest";
import { CidrListSchema } from "./cidr.ts";

describe("CIDR lists", () => {
  it("accepts addresses and networks of both families and rejects the rest with the reason", () => {
    expect(CidrListSchema.parse(["10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "::1"])).toHaveLength(4);
    expect(CidrListSchema.parse(undefined)).toEqual([]);
    for (const bad of ["10.0.0.0/33", "300.1.1.1", "example.org", "10.0.0.0/8/1", "2001:db8::/129"]) {
      const r = CidrListSchema.safeParse([bad]);
      expect(r.success).toBe(false);
      expect(r.error!.issues[0]!.message).toContain("not an IP address or CIDR");
    }
  });
});
