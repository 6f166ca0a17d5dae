import { describe, expect, it } from "vitest";
import { explainPublishError } from "./client.ts";

const error = (name: string, message: string) => Object.assign(new Error(message), { name });

describe("explainPublishError", () => {
  it("names a leader election for what JetStream answers while it has no leader, and says to retry", () => {
    expect(explainPublishError(error("NoRespondersError", "no responders: 'parrot.control.purge'"))).toEqual({
      retry: true,
      reason: "leader election in progress (no JetStream server answered for the stream)",
    });
    expect(explainPublishError(error("Error", "jetstream is not enabled for account"))).toMatchObject({ retry: true, reason: /^leader election in progress/ });
    expect(explainPublishError(error("TimeoutError", "timeout"))).toMatchObject({ retry: true, reason: /hung server or a leader election/ });
  });

  it("does not retry what another attempt cannot fix", () => {
    expect(explainPublishError(error("JetStreamApiError", "maximum payload exceeded"))).toEqual({ retry: false, reason: "JetStreamApiError: maximum payload exceeded" });
  });
});
