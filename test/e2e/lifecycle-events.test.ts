import { existsSync } from "node:fs";
import path from "node:path";

import { afterEach, describe, expect, it, vi } from "vitest";

import { type RunningApp, startApp, tempDir } from "../helpers/app-harness.js";
import { deliver, examplePayload } from "../helpers/webhooks.js";
import { createWorld, INSTALLATION_ID, ISSUE, labeledPayload, OWNER, REPO, scriptHappyPath, SECRET } from "./scenario.js";

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

async function readyForMerge() {
  dirs = tempDir();
  world = createWorld();
  scriptHappyPath(world.anthropic);
  app = await startApp({ databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "workspaces") });
  await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
  await waitForState(app, "ready_for_merge");
  return { app, world };
}

async function waitForState(running: RunningApp, state: string): Promise<void> {
  await vi.waitFor(
    async () => {
      const open = await running.db.selectFrom("jobs").select("id").where("state", "in", ["queued", "running"]).execute();
      expect(open).toEqual([]);
      const task = await running.db.selectFrom("tasks").select("stage").executeTakeFirstOrThrow();
      expect(task.stage).toBe(state);
    },
    { timeout: 30_000, interval: 50 },
  );
  await running.worker.idle();
}

function adaptRepository(payload: any, cloneUrl: string, sender = "maintainer") {
  const labeled = labeledPayload({ cloneUrl });
  payload.repository = labeled.repository;
  payload.installation = { id: INSTALLATION_ID };
  payload.sender = { ...labeled.sender, login: sender, type: "User" };
  return payload;
}

function closedPullRequest(cloneUrl: string, number: number, merged: boolean) {
  const payload = adaptRepository(examplePayload("pull_request", "closed"), cloneUrl);
  payload.pull_request.number = number;
  payload.pull_request.merged = merged;
  payload.number = number;
  return payload;
}

describe("the issue-to-merge lifecycle on GitHub events", () => {
  it("a merged pull request moves the task to merged with a final summary, and removes the clone", async () => {
    const { app, world } = await readyForMerge();
    const pr = world.github.pulls[0]!;
    world.github.closePull(pr.number, true);
    await deliver(app.url, { event: "pull_request", payload: closedPullRequest(world.bare, pr.number, true), secret: SECRET });
    await waitForState(app, "merged");

    expect(world.github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:merged"]);
    const tracking = world.github.comments.find((c) => c.body.startsWith("<!-- mission-control:tracking -->"))!;
    expect(tracking.body).toMatch(/\*\*Merged\.\*\* Total \$0\.0275 · wall time \d+ s · 0 rework cycles\./);
    const transitions = await app.db.selectFrom("transitions").select(["from_state", "to_state"]).orderBy("id").execute();
    expect(transitions.at(-1)).toEqual({ from_state: "ready_for_merge", to_state: "merged" });
    expect(existsSync(path.join(app.env.WORKSPACES_DIR, OWNER, REPO, `issue-${ISSUE}`))).toBe(false);
    // The app never merged anything itself.
    expect(world.github.merges).toEqual([]);
  });

  it("a pull request closed without merging cancels the task", async () => {
    const { app, world } = await readyForMerge();
    const pr = world.github.pulls[0]!;
    world.github.closePull(pr.number, false);
    await deliver(app.url, { event: "pull_request", payload: closedPullRequest(world.bare, pr.number, false), secret: SECRET });
    await waitForState(app, "cancelled");
    expect(world.github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:cancelled"]);
    const tracking = world.github.comments.find((c) => c.body.startsWith("<!-- mission-control:tracking -->"))!;
    expect(tracking.body).toContain("**Cancelled.**");
    expect(tracking.body).not.toContain("⏳");
  });

  it("an issue closed by a person while the Coder is queued cancels its jobs", async () => {
    dirs = tempDir();
    world = createWorld();
    scriptHappyPath(world.anthropic);
    app = await startApp({ databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "workspaces") });
    await app.worker.stop(0);
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    // The examples have no issues.closed payload: GitHub's issues.reopened one, turned around.
    const closed = adaptRepository(examplePayload("issues", "reopened"), world.bare);
    closed.action = "closed";
    closed.issue.number = ISSUE;
    closed.issue.state = "closed";
    await deliver(app.url, { event: "issues", payload: closed, secret: SECRET });
    const jobs = await app.db.selectFrom("jobs").select(["kind", "state"]).orderBy("id").execute();
    expect(jobs).toEqual([
      { kind: "plan", state: "cancelled" },
      { kind: "cancel", state: "queued" },
    ]);
    app.worker.start();
    await waitForState(app, "cancelled");
    expect(world.anthropic.requests).toEqual([]);
    expect(world.github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:cancelled"]);
  });

  it("never merges by itself unless auto_merge is on, every check passed and a human approved", async () => {
    dirs = tempDir();
    world = createWorld({ repoConfigYaml: "auto_merge: true\n" });
    scriptHappyPath(world.anthropic);
    app = await startApp({ databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "workspaces") });
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await waitForState(app, "ready_for_merge");
    // Checks passed, but no human approved: nothing merged.
    expect(world.github.merges).toEqual([]);
  });
});
