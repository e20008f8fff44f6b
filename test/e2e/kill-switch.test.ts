import path from "node:path";

import { afterEach, describe, expect, it, vi } from "vitest";

import { type RunningApp, startApp, tempDir } from "../helpers/app-harness.js";
import { deliver } from "../helpers/webhooks.js";
import { createWorld, ISSUE, labeledPayload, scriptHappyPath, SECRET } from "./scenario.js";

let app: RunningApp | undefined;
let world: ReturnType<typeof createWorld> | undefined;
let dirs: ReturnType<typeof tempDir> | undefined;

afterEach(async () => {
  await app?.stop(0);
  world?.github.stop();
  world?.anthropic.stop();
  dirs?.cleanup();
  app = undefined;
  world = undefined;
  dirs = undefined;
});

describe("the kill switch PAUSE=1", () => {
  it("stops every new LLM call: the task waits for a human, nothing is sent to Anthropic", async () => {
    dirs = tempDir();
    world = createWorld();
    scriptHappyPath(world.anthropic);
    app = await startApp({ databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "ws"), env: { PAUSE: "1" } });
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
