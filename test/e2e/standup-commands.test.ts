import { describe, expect, it } from "vitest";

import { enqueueDueStandups } from "../../src/pipeline/orchestrator.js";
import type { RunningApp } from "../helpers/app-harness.js";
import { deliver } from "../helpers/webhooks.js";
import { commentPayload, settleJobs as settle, waitForReply } from "./command-helpers.js";
import { useE2E } from "./harness.js";
import { ISSUE, SECRET } from "./scenario.js";

const boot = useE2E();

const CONFIG = ["orchestrator:", "  standup:", '    cron: "0 9 * * *"', "    timezone: Europe/Berlin", ""].join("\n");

async function comment(app: RunningApp, bare: string, body: string, issue: number) {
  const { payload, commentId } = commentPayload({ cloneUrl: bare, body, issue });
  const response = await deliver(app.url, { event: "issue_comment", payload, secret: SECRET });
  expect(response.status).toBeLessThan(300);
  return commentId;
}

describe("orchestrator mode: what the stand-up issue takes", () => {
  it("answers a plain mention or a run-starting command on the stand-up with what works there, and starts nothing", async () => {
    const { app, world } = await boot({ permissions: { maintainer: "write" }, repoConfigYaml: CONFIG });
    const { github } = world;
    // A `/help` on the issue records the schedule; the first fire writes the stand-up issue.
    await waitForReply(github, await comment(app, world.bare, "/help", ISSUE));
    await settle(app);
    const schedule = await app.db.selectFrom("repository_schedules").selectAll().executeTakeFirstOrThrow();
    expect(await enqueueDueStandups(app.db, Number(schedule.next_run_at))).toBe(1);
    await settle(app);
    const standup = Number((await app.db.selectFrom("repository_schedules").select("standup_issue_number").executeTakeFirstOrThrow()).standup_issue_number);
    expect(standup).toBeGreaterThan(0);
    const jobsBefore = (await app.db.selectFrom("jobs").select("kind").execute()).map((j) => j.kind);

    // "Thanks @app, please approve 2" is a mention in plain words, not `/approve 2`: it must not plan the stand-up.
    const thanks = await waitForReply(github, await comment(app, world.bare, "Thanks @mission-control-test, please approve 2", standup));
    expect(thanks).toContain("this is the stand-up issue");
    expect(thanks).toContain("`/approve <n>`");
    expect(thanks).toContain("Nothing was started");
    // A command that would start a run there gets the same answer.
    for (const body of ["/plan", "/code do it", "@mission-control-test review"]) {
      const reply = await waitForReply(github, await comment(app, world.bare, body, standup));
      expect(reply, body).toContain("was not run: this is the stand-up issue");
    }
    await settle(app);
    // No task for the stand-up issue, no job beyond those before, no model call, no reaction promising work.
    expect(await app.db.selectFrom("tasks").select("id").where("issue_number", "=", standup).execute()).toEqual([]);
    expect((await app.db.selectFrom("jobs").select("kind").execute()).filter((j) => j.kind !== "intake").length).toBe(
      jobsBefore.filter((k) => k !== "intake").length,
    );
    expect(world.anthropic.requests).toEqual([]);
    expect(github.reactions.filter((r) => r.content === "eyes").length).toBe(1); // the first `/help`'s only

    // The commands it takes still work there.
    expect(await waitForReply(github, await comment(app, world.bare, "/help", standup))).toContain("/approve");
    await settle(app);
    expect(world.anthropic.requests).toEqual([]);
  }, 30_000);
});
