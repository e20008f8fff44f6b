import { describe, expect, it } from "vitest";

import { deliver } from "../../../helpers/webhooks.js";
import { commentPayload } from "../../../e2e/command-helpers.js";
import { useE2E } from "../../../e2e/harness.js";
import { ISSUE, labeledPayload, OWNER, REPO, SECRET } from "../../../e2e/scenario.js";

const boot = useE2E();

describe("the webhook path", () => {
  it("answers a triggering delivery while GitHub hangs: the permission and config reads happen in the intake job", async () => {
    const { app, world } = await boot({}, {}, false);
    world.github.hangNext("GET", /\/contents\/\.github\/mission-control\.yml$/);
    world.github.hangNext("GET", /\/collaborators\/[^/]+\/permission$/);
    world.github.hangNext("GET", /^\/app$/);
    const res = await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET, noWait: true });
    expect(res.status).toBeLessThan(300);
    expect(res.elapsedMs).toBeLessThan(2_000);
    const jobs = await app.db.selectFrom("jobs").select(["kind", "task_id", "lock_key"]).execute();
    expect(jobs).toEqual([{ kind: "intake", task_id: null, lock_key: `cmd:${OWNER}/${REPO}#${ISSUE}` }]);
  });

  it("answers a slash-command while GitHub hangs, and a redelivery is a duplicate", async () => {
    const { app, world } = await boot({}, {}, false);
    world.github.hangNext("GET", /\/collaborators\/[^/]+\/permission$/);
    world.github.hangNext("POST", /\/reactions$/);
    const { payload } = commentPayload({ cloneUrl: world.bare, body: "/status" });
    const first = await deliver(app.url, { event: "issue_comment", payload, secret: SECRET, id: "delivery-hang-1", noWait: true });
    expect(first.status).toBeLessThan(300);
    expect(first.elapsedMs).toBeLessThan(2_000);
    const again = await deliver(app.url, { event: "issue_comment", payload, secret: SECRET, id: "delivery-hang-1", noWait: true });
    expect(again.status).toBeLessThan(300);
    const jobs = await app.db.selectFrom("jobs").select("kind").execute();
    expect(jobs).toEqual([{ kind: "intake" }]);
  });
});
