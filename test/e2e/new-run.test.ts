/**
 * A new run started by a second maintainer (`/plan` after a first run) is theirs: the commit
 * trailer pairs their login with their own id, and the run's start time is the new run's.
 * (Issue 10: the reset of a new run used to be written twice, with different fields.)
 */
import { describe, expect, it } from "vitest";

import { git } from "../helpers/git-fixtures.js";
import { deliver } from "../helpers/webhooks.js";
import { commentPayload } from "./command-helpers.js";
import { useE2E, waitForState } from "./harness.js";
import { labeledPayload, scriptHappyPath, SECRET } from "./scenario.js";

const boot = useE2E();

describe("a new run by another maintainer", () => {
  it("/plan: Co-authored-by names the new maintainer with their own id, and started_at is the new run's", async () => {
    const { app, world } = await boot({ permissions: { maintainer: "write", "second-maintainer": "write" } });
    scriptHappyPath(world.anthropic);
    const labelled = labeledPayload({ cloneUrl: world.bare });
    labelled.sender.id = 1111;
    await deliver(app.url, { event: "issues", payload: labelled, secret: SECRET });
    await waitForState(app, "ready_for_merge");
    const first = await app.db.selectFrom("tasks").select(["started_at", "triggered_by", "triggered_by_id"]).executeTakeFirstOrThrow();
    expect(first).toMatchObject({ triggered_by: "maintainer", triggered_by_id: 1111 });

    scriptHappyPath(world.anthropic);
    const { payload } = commentPayload({ cloneUrl: world.bare, body: "/plan", sender: "second-maintainer" });
    payload.sender.id = 2222;
    const before = Date.now();
    await deliver(app.url, { event: "issue_comment", payload, secret: SECRET });
    await waitForState(app, "ready_for_merge");

    const second = await app.db.selectFrom("tasks").select(["run", "started_at", "triggered_by", "triggered_by_id"]).executeTakeFirstOrThrow();
    expect(second).toMatchObject({ run: 2, triggered_by: "second-maintainer", triggered_by_id: 2222 });
    expect(second.started_at).toBeGreaterThanOrEqual(before);
    expect(second.started_at).toBeGreaterThan(first.started_at ?? 0);
    const message = git(["--git-dir", world.bare, "log", "-1", "--format=%B", "mc/issue-7-friendlier-greeting-run2"]);
    expect(message).toContain("Co-authored-by: second-maintainer <2222+second-maintainer@users.noreply.github.com>");
    expect(message).not.toContain("1111+");
  });
});
