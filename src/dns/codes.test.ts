import { describe, expect, it } from "vitest";
import { rcodeCode, rcodeName, TYPE, typeCode, typeName } from "./codes.ts";

describe("the type and rcode table", () => {
  it("maps both ways, with RFC 3597 names for types without a mnemonic", () => {
    expect(typeName(TYPE.AAAA)).toBe("AAAA");
    expect(typeName(65280)).toBe("TYPE65280");
    expect(typeName(-1)).toBe("NONE");
    expect(typeCode("aaaa")).toBe(28);
    expect(typeCode("TYPE65280")).toBe(65280);
    expect(typeCode("TYPE70000")).toBeUndefined();
    expect(typeCode("NOPE")).toBeUndefined();
    expect(rcodeName(3)).toBe("NXDOMAIN");
    expect(rcodeName(16)).toBe("BADVERS");
    expect(rcodeName(9)).toBe("RCODE9");
    expect(rcodeCode("refused")).toBe(5);
  });
});
