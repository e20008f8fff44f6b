import { describe, expect, it, vi } from "vitest";

import { deliver } from "../helpers/webhooks.js";
import { useE2E } from "./harness.js";
import { ISSUE, labeledPayload, scriptHappyPath, SECRET } from "./scenario.js";

const boot = useE2E();

describe("the kill switch PAUSE=1", () => {
  it("stops every new LLM call: the task waits for a human, nothing is sent to Anthropic", async () => {
    const { app, world } = await boot({}, { PAUSE: "1" });
    scriptHappyPath(world.anthropic);
    const running = app;
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await vi.waitFor(
      async () => {
        const task = await running.db.selectFrom("tasks").select(["stage", "blocked_reason"]).executeTakeFirstOrThrow();
        expect(task.stage).toBe("blocked");
        expect(task.blocked_reason).toContain("PAUSE=1");
      },
      { timeout: 30_000, interval: 50 },
    );
    await app.worker.idle();
    expect(world.anthropic.requests).toEqual([]);
    expect(await app.db.selectFrom("budget_reservations").select("id").execute()).toEqual([]);
    expect(world.github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:blocked"]);
    const tracking = world.github.comments.find((c) => c.body.startsWith("<!-- mission-control:tracking -->"));
    expect(tracking?.body).toContain("New LLM calls are paused (PAUSE=1 in the server environment)");
    expect(tracking?.body).not.toContain("⏳");
  });
});
