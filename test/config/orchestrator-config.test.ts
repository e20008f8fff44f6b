import { describe, expect, it } from "vitest";

import { cronProblem, localDate, nextFireAt } from "../../src/config/cron.js";
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
  ])("refuses %j with a clear problem", (orchestrator, message) => {
    const { problems } = parseRepoConfig({ orchestrator });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(message);
  });

  it("computes fire times and local dates in the zone", () => {
    expect(cronProblem("0 9 * * *", "Asia/Tokyo")).toBeNull();
    // 09:00 in Tokyo (UTC+9) is 00:00 UTC.
    expect(nextFireAt("0 9 * * *", "Asia/Tokyo", Date.UTC(2026, 10, 27, 1, 0))).toBe(Date.UTC(2026, 10, 28, 0, 0));
    expect(localDate(Date.UTC(2026, 10, 27, 23, 30), "Asia/Tokyo")).toBe("2026-11-28");
    expect(localDate(Date.UTC(2026, 10, 27, 23, 30), "UTC")).toBe("2026-11-27");
  });
});
