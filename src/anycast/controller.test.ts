import { describe, expect, it } from "vitest";
import type { ProbeResult } from "../health/health.ts";
import { afterCheck, afterSpeaker, afterStop, initialAnnouncer } from "./announcer.ts";
import { AnycastController, type Speaker, type SpeakerStatus } from "./controller.ts";

const SETTINGS = { downAfter: 2, upAfter: 3 };
const OK: ProbeResult = { kind: "ok" };
const FAIL: ProbeResult = { kind: "failed", detail: "HTTP 500" };
const DRAINING: ProbeResult = { kind: "draining" };

describe("the announcer's decisions", () => {
  it("starts withdrawn and wants the routes only after upAfter good checks", () => {
    let s = initialAnnouncer(0);
    expect([s.want, s.announced, s.health.state]).toEqual([false, "withdrawn", "down"]);
    s = afterCheck(s, OK, SETTINGS, 1);
    s = afterCheck(s, OK, SETTINGS, 2);
    expect([s.want, s.reason]).toEqual([false, "service recovering (2 of 3 good checks)"]);
    s = afterCheck(s, OK, SETTINGS, 3);
    expect([s.want, s.reason]).toEqual([true, "service healthy"]);
  });

  it("withdraws after downAfter failures in a row, not one", () => {
    let s = initialAnnouncer(0);
    for (let i = 1; i <= 3; i++) s = afterCheck(s, OK, SETTINGS, i);
    s = afterCheck(s, FAIL, SETTINGS, 4);
    expect([s.want, s.reason]).toEqual([true, "service failing (1 of 2: HTTP 500)"]);
    s = afterCheck(s, OK, SETTINGS, 5); // a good check resets the count
    s = afterCheck(s, FAIL, SETTINGS, 6);
    expect(s.want).toBe(true);
    s = afterCheck(s, FAIL, SETTINGS, 7);
    expect([s.want, s.reason]).toEqual([false, "service down (HTTP 500)"]);
  });

  it("withdraws at once when the service drains, and for good once stopping", () => {
    let s = initialAnnouncer(0);
    for (let i = 1; i <= 3; i++) s = afterCheck(s, OK, SETTINGS, i);
    s = afterCheck(s, DRAINING, SETTINGS, 4);
    expect([s.want, s.reason]).toEqual([false, "service draining"]);
    s = afterCheck(s, OK, SETTINGS, 5); // the drain ended: the first good check (as at the DNS nodes)
    expect(s.want).toBe(true);
    s = afterStop(s);
    for (let i = 6; i < 10; i++) s = afterCheck(s, OK, SETTINGS, i);
    expect([s.want, s.stopping, s.reason]).toEqual([false, true, "stopping: withdrawn before the service stops"]);
  });

  it("counts as announced only routes enabled with an Established session, and counts changes", () => {
    let s = initialAnnouncer(0);
    s = afterSpeaker(s, { routesEnabled: true, established: 0 }, 1);
    expect(s.announced).toBe("withdrawn");
    s = afterSpeaker(s, { routesEnabled: true, established: 1 }, 2);
    expect([s.announced, s.since, s.changes]).toEqual(["announced", 2, 1]);
    s = afterSpeaker(s, { routesEnabled: true, established: 2 }, 3);
    expect([s.since, s.changes]).toEqual([2, 1]);
    s = afterSpeaker(s, { routesEnabled: false, established: 2 }, 4);
    expect([s.announced, s.since, s.changes]).toEqual(["withdrawn", 4, 2]);
  });
});

/** A speaker in memory: routes on or off, sessions as the test sets them, control failures on demand. */
class FakeSpeaker implements Speaker {
  routes = false;
  sessions = [{ neighbor: "r1", state: "Established", info: "Established" }];
  failing = 0;
  restarts: string[] = [];
  calls: string[] = [];
  async status(): Promise<SpeakerStatus> {
    if (this.failing > 0) {
      this.failing--;
      throw new Error("birdc: timed out");
    }
    return { routesEnabled: this.routes, sessions: this.sessions.map((x) => ({ ...x })) };
  }
  async setRoutes(enabled: boolean) {
    this.calls.push(enabled ? "enable" : "disable");
    this.routes = enabled;
  }
  async restart(reason: string) {
    this.restarts.push(reason);
    this.routes = false;
  }
}

function setup(results: ProbeResult[]) {
  let now = 0;
  const speaker = new FakeSpeaker();
  const events: Record<string, unknown>[] = [];
  const reports: string[] = [];
  let next = 0;
  const controller = new AnycastController({
    check: async () => results[Math.min(next++, results.length - 1)]!,
    speaker,
    settings: SETTINGS,
    now: () => now,
    log: (e) => events.push(e),
    report: async (state) => void reports.push(state),
  });
  const rounds = async (n: number) => {
    for (let i = 0; i < n; i++) {
      now += 1000;
      await controller.round();
    }
  };
  return { controller, speaker, events, reports, rounds, results, at: () => now };
}

describe("the announcer's loop", () => {
  it("enables the routes after upAfter good rounds, reports and logs the announcement once", async () => {
    const t = setup([OK]);
    await t.rounds(2);
    expect([t.speaker.routes, t.controller.status().announced]).toEqual([false, "withdrawn"]);
    expect(t.reports).toEqual(["withdrawn"]); // told at the first round: a restarted box is withdrawn
    await t.rounds(1);
    expect([t.speaker.routes, t.controller.status().announced]).toEqual([true, "announced"]);
    expect(t.reports).toEqual(["withdrawn", "announced"]);
    await t.rounds(5);
    expect(t.speaker.calls).toEqual(["enable"]);
    expect(t.reports).toEqual(["withdrawn", "announced"]);
    expect(t.events.filter((e) => e.event === "anycast")).toEqual([
      { event: "anycast", state: "announced", reason: "service healthy", sessions_established: 1, changes: 1 },
    ]);
    expect(t.controller.status()).toMatchObject({ since: 3000, changes: 1, checks: { ok: 8, failed: 0, draining: 0 } });
  });

  it("withdraws after downAfter failed rounds and announces again after upAfter good ones", async () => {
    const t = setup([OK, OK, OK, FAIL, FAIL, OK, OK, OK]);
    await t.rounds(4);
    expect(t.speaker.routes).toBe(true);
    await t.rounds(1);
    expect([t.speaker.routes, t.controller.status().announced, t.at()]).toEqual([false, "withdrawn", 5000]);
    await t.rounds(2);
    expect(t.speaker.routes).toBe(false);
    await t.rounds(1);
    expect([t.speaker.routes, t.controller.status().announced]).toEqual([true, "announced"]);
    expect(t.controller.status().changes).toBe(3);
    const metrics = t.controller.metrics();
    expect(metrics).toContain("parrot_anycast_announced 1");
    expect(metrics).toContain("parrot_anycast_changes_total 3");
    expect(metrics).toContain("parrot_anycast_last_change_timestamp_seconds 8");
    expect(metrics).toContain('parrot_anycast_checks_total{result="failed"} 2');
    expect(metrics).toContain('parrot_anycast_bgp_session_up{neighbor="r1"} 1');
  });

  it("is not announced while no BGP session is Established, and logs session changes", async () => {
    const t = setup([OK]);
    t.speaker.sessions = [{ neighbor: "r1", state: "Active", info: "Active Socket: Connection refused" }];
    await t.rounds(3);
    expect([t.speaker.routes, t.controller.status().announced]).toEqual([true, "withdrawn"]);
    expect(t.controller.metrics()).toContain('parrot_anycast_bgp_session_state{neighbor="r1",state="Active"} 1');
    t.speaker.sessions = [{ neighbor: "r1", state: "Established", info: "Established" }];
    await t.rounds(1);
    expect(t.controller.status().announced).toBe("announced");
    expect(t.events.filter((e) => e.event === "bgp_session").map((e) => [e.state, e.was])).toEqual([
      ["Active", null],
      ["Established", "Active"],
    ]);
  });

  it("withdraw() during a round that is about to announce: the routes end up off", async () => {
    const t = setup([OK]);
    await t.rounds(2);
    // Hold the third round inside `birdc enable`: its check said up_after is reached.
    let entered!: () => void;
    const inSpeaker = new Promise<void>((r) => (entered = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const setRoutes = t.speaker.setRoutes.bind(t.speaker);
    t.speaker.setRoutes = async (enabled) => {
      entered();
      await gate;
      t.speaker.setRoutes = setRoutes;
      return setRoutes(enabled);
    };
    const third = t.rounds(1);
    await inSpeaker;
    const stopped = t.controller.withdraw(); // runs after the round, and wins
    release();
    await Promise.all([third, stopped]);
    expect([t.speaker.routes, t.controller.status().announced]).toEqual([false, "withdrawn"]);
    expect(t.speaker.calls).toEqual(["enable", "disable"]);
    // Asked before a round's check: that round wants nothing.
    const u = setup([OK]);
    await u.rounds(2);
    const next = u.rounds(1);
    await u.controller.withdraw();
    await next;
    expect(u.speaker.calls).toEqual([]);
  });

  it("withdraw(): routes off at once and never on again, whatever the checks say", async () => {
    const t = setup([OK]);
    await t.rounds(3);
    expect(t.speaker.routes).toBe(true);
    await t.controller.withdraw();
    expect([t.speaker.routes, t.controller.status().announced, t.controller.status().stopping]).toEqual([false, "withdrawn", true]);
    expect(t.reports.at(-1)).toBe("withdrawn");
    await t.rounds(5);
    expect(t.speaker.routes).toBe(false);
  });

  it("watchdog: restarts a speaker that fails three control calls in a row, then announces again", async () => {
    const t = setup([OK]);
    await t.rounds(3);
    t.speaker.failing = 3;
    await t.rounds(2);
    expect(t.speaker.restarts).toEqual([]);
    expect(t.controller.status().announced).toBe("announced"); // two failures: not yet
    await t.rounds(1);
    expect(t.speaker.restarts).toEqual(["3 control calls failed in a row"]);
    expect(t.controller.status()).toMatchObject({ announced: "withdrawn", speakerRestarts: 1, controlErrors: 3 });
    await t.rounds(1); // the restarted speaker has its routes off; the next round turns them on
    expect([t.speaker.routes, t.controller.status().announced]).toEqual([true, "announced"]);
    expect(t.events.some((e) => e.event === "anycast_watchdog")).toBe(true);
  });

  it("counts a check that throws as failed, and retries a report that failed", async () => {
    let reportFails = 1;
    const speaker = new FakeSpeaker();
    const reports: string[] = [];
    const controller = new AnycastController({
      check: async () => {
        throw new Error("boom");
      },
      speaker,
      settings: SETTINGS,
      report: async (state) => {
        if (reportFails-- > 0) throw new Error("edge not ready");
        reports.push(state);
      },
    });
    await controller.round();
    expect(reports).toEqual([]);
    await controller.round();
    expect(reports).toEqual(["withdrawn"]);
    expect(controller.status().checks.failed).toBe(2);
    expect(controller.status().health.lastProbe?.detail).toBe("boom");
  });

  it("a report the service never answers does not hold up the rounds (a hung service must still be withdrawn)", async () => {
    let now = 0;
    const results = [OK, OK, OK, FAIL, FAIL];
    let next = 0;
    const speaker = new FakeSpeaker();
    let reports = 0;
    const controller = new AnycastController({
      check: async () => results[Math.min(next++, results.length - 1)]!,
      speaker,
      settings: SETTINGS,
      now: () => now,
      report: () => (reports++, new Promise<void>(() => {})), // the edge hangs
    });
    for (let i = 0; i < 5; i++) {
      now += 1000;
      await controller.round();
    }
    expect([speaker.routes, controller.status().announced]).toEqual([false, "withdrawn"]);
    expect(reports).toBe(1); // one at a time: the first never ended
  });

  it("never runs two rounds at once", async () => {
    let checks = 0;
    let release!: () => void;
    const controller = new AnycastController({
      check: () => {
        checks++;
        return new Promise<ProbeResult>((r) => (release = () => r(OK)));
      },
      speaker: new FakeSpeaker(),
      settings: SETTINGS,
    });
    const a = controller.round();
    const b = controller.round();
    await new Promise((r) => setTimeout(r, 0));
    const c = controller.round();
    release();
    await Promise.all([a, b, c]);
    expect(checks).toBe(1);
    expect([a === b, b === c]).toEqual([true, true]);
  });
});
