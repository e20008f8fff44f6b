import { describe, expect, it } from "vitest";

import { cronProblem, localDate, nextFireAt, shortestGapMs } from "../../src/config/cron.js";
import { parseRepoConfig } from "../../src/config/repo-config.js";

describe("the orchestrator: section", () => {
  it("is off by default, with three proposals a day and no label", () => {
    const { config, problems } = parseRepoConfig({});
    expect(problems).toEqual([]);
    expect(config.orchestrator).toEqual({ max_proposals: 3 });
  });

  it("takes a stand-up schedule (time zone UTC unless given), a proposal limit and a label", () => {
    const { config, problems } = parseRepoConfig({ orchestrator: { standup: { cron: "30 8 * * 1-5" }, max_proposals: 0, proposal_label: "follow-up" } });
    expect(problems).toEqual([]);
    expect(config.orchestrator).toEqual({ standup: { cron: "30 8 * * 1-5", timezone: "UTC" }, max_proposals: 0, proposal_label: "follow-up" });
  });

  it.each([
    [
      { standup: { cron: "0 9 * *", timezone: "UTC" } },
      "orchestrator.standup: the cron expression must have five fields (minute hour day-of-month month day-of-week), not 4",
    ],
    [{ standup: { cron: "0 25 * * *", timezone: "UTC" } }, "orchestrator.standup: the cron expression is not valid: "],
    [{ standup: { cron: "0 9 * * *", timezone: "Mars/Olympus_Mons" } }, "orchestrator.standup: the time zone is not an IANA time zone name"],
    [{ standup: { cron: "0 9 * * *", when: "daily" } }, "orchestrator.standup: "],
    [{ max_proposals: 50 }, "orchestrator.max_proposals: "],
    // At most one stand-up an hour: every minute, several minutes of an hour, a minute range or step.
    [{ standup: { cron: "* * * * *" } }, "orchestrator.standup: the minute field must be one minute (0-59): a stand-up runs at most once an hour"],
    [{ standup: { cron: "0,30 9 * * *" } }, "orchestrator.standup: the minute field must be one minute"],
    [{ standup: { cron: "*/15 9 * * 1-5" } }, "orchestrator.standup: the minute field must be one minute"],
    [{ standup: { cron: "0-59 * * * *" } }, "orchestrator.standup: the minute field must be one minute"],
  ])("refuses %j with a clear problem", (orchestrator, message) => {
    const { problems } = parseRepoConfig({ orchestrator });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(message);
  });

  it("accepts hourly and several-times-a-day schedules, at least an hour apart", () => {
    for (const cron of ["0 * * * *", "5 9,17 * * 1-5", "30 */2 * * *", "0 9 * * *"]) expect(cronProblem(cron, "Europe/Berlin")).toBeNull();
    // The next five fires of a schedule, checked against the hour (the rule behind the minute field's).
    const from = Date.UTC(2026, 10, 27, 12, 0);
    expect(shortestGapMs("0,30 9 * * *", "UTC", from, 5)).toBe(30 * 60_000);
    expect(shortestGapMs("* * * * *", "UTC", from, 5)).toBe(60_000);
    expect(shortestGapMs("0 * * * *", "UTC", from, 5)).toBe(3_600_000);
    expect(shortestGapMs("0 9 * * *", "UTC", from, 1)).toBeNull();
  });

  it("computes fire times and local dates in the zone", () => {
    expect(cronProblem("0 9 * * *", "Asia/Tokyo")).toBeNull();
    // 09:00 in Tokyo (UTC+9) is 00:00 UTC.
    expect(nextFireAt("0 9 * * *", "Asia/Tokyo", Date.UTC(2026, 10, 27, 1, 0))).toBe(Date.UTC(2026, 10, 28, 0, 0));
    expect(localDate(Date.UTC(2026, 10, 27, 23, 30), "Asia/Tokyo")).toBe("2026-11-28");
    expect(localDate(Date.UTC(2026, 10, 27, 23, 30), "UTC")).toBe("2026-11-27");
  });
});
