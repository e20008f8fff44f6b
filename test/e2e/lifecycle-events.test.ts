import { existsSync } from "node:fs";
import path from "node:path";

import { describe, expect, it, vi } from "vitest";

import { deliver, examplePayload, intakeWaiters } from "../helpers/webhooks.js";
import { toolUse } from "../helpers/anthropic-fake.js";
import { commentPayload } from "./command-helpers.js";
import { reviewSubmittedPayload } from "./revision-helpers.js";
import { useE2E, waitForState } from "./harness.js";
import { INSTALLATION_ID, ISSUE, labeledPayload, OWNER, PLAN, REPO, scriptHappyPath, SECRET, USAGE } from "./scenario.js";

const boot = useE2E();

async function readyForMerge() {
  const { app, world } = await boot();
  scriptHappyPath(world.anthropic);
  await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
  await waitForState(app, "ready_for_merge");
  return { app, world };
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
    const { app, world } = await boot();
    scriptHappyPath(world.anthropic);
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

  it("a person merging while the task waits for a human still ends it merged", async () => {
    const { app, world } = await boot({ repoConfigYaml: "coder:\n  max_turns: 1\n" });
    world.anthropic.script("architect", { content: [toolUse("submit_plan", PLAN)], usage: USAGE.architect });
    world.anthropic.script("coder", {
      content: [toolUse("edit_file", { path: "src/greet.js", old_text: '"Hello " + name', new_text: '"Hello, " + name' })],
      usage: USAGE.coder[0]!,
    });
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await waitForState(app, "blocked"); // the Coder hit its one-turn limit; a draft PR exists
    const pr = world.github.pulls[0]!;
    world.github.closePull(pr.number, true);
    await deliver(app.url, { event: "pull_request", payload: closedPullRequest(world.bare, pr.number, true), secret: SECRET });
    await waitForState(app, "merged");
    expect(world.github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:merged"]);
  });

  it("/plan notes reach the Architect as data in the user turn", async () => {
    const { app, world } = await boot();
    scriptHappyPath(world.anthropic);
    await deliver(app.url, {
      event: "issue_comment",
      payload: commentPayload({ cloneUrl: world.bare, body: "/plan keep the old greeting as an alias <!-- hidden -->" }).payload,
      secret: SECRET,
    });
    await waitForState(app, "ready_for_merge");
    const request = world.anthropic.requestsOf("architect")[0]!.body;
    const user = JSON.stringify(request.messages);
    expect(user).toContain("maintainer_notes");
    expect(user).toContain("keep the old greeting as an alias");
    expect(user).not.toContain("hidden");
    expect(JSON.stringify(request.system)).not.toContain("keep the old greeting");
  });

  it("with auto_merge, a person's later approval merges once every check passed", async () => {
    const { app, world } = await boot({ repoConfigYaml: "auto_merge: true\n" });
    scriptHappyPath(world.anthropic);
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await waitForState(app, "ready_for_merge");
    const pr = world.github.pulls[0]!;
    const reviewId = world.github.addHumanReview(pr.number, { login: "maintainer", state: "APPROVED", body: "LGTM" });
    await deliver(app.url, {
      event: "pull_request_review",
      payload: reviewSubmittedPayload({ cloneUrl: world.bare, pullNumber: pr.number, reviewId, state: "approved" }),
      secret: SECRET,
    });
    await vi.waitFor(() => expect(world.github.merges).toHaveLength(1), { timeout: 30_000, interval: 50 });
    expect(world.github.merges[0]).toMatchObject({ pull: pr.number, method: "squash" });
  });

  it("an approval whose intake is still waiting on GitHub does not merge a pull request closed meanwhile", async () => {
    const { app, world } = await boot({ repoConfigYaml: "auto_merge: true\n" });
    scriptHappyPath(world.anthropic);
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await waitForState(app, "ready_for_merge");
    const pr = world.github.pulls[0]!;
    const reviewId = world.github.addHumanReview(pr.number, { login: "maintainer", state: "APPROVED", body: "LGTM" });
    // The approval's intake waits 1.5 s on the permission check; meanwhile the pull request is closed.
    world.github.delayNext("GET", /\/collaborators\/maintainer\/permission$/, 1_500);
    const approval = await deliver(app.url, {
      event: "pull_request_review",
      payload: reviewSubmittedPayload({ cloneUrl: world.bare, pullNumber: pr.number, reviewId, state: "approved" }),
      secret: SECRET,
      noWait: true,
    });
    await deliver(app.url, { event: "pull_request", payload: closedPullRequest(world.bare, pr.number, false), secret: SECRET });
    await waitForState(app, "cancelled");
    await intakeWaiters.get(app.url)?.(approval.id);
    await app.worker.idle();
    expect(world.github.merges).toEqual([]);
    expect((await app.db.selectFrom("tasks").select("stage").executeTakeFirstOrThrow()).stage).toBe("cancelled");
  });

  it("never merges by itself unless auto_merge is on, every check passed and a human approved", async () => {
    const { app, world } = await boot({ repoConfigYaml: "auto_merge: true\n" });
    scriptHappyPath(world.anthropic);
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await waitForState(app, "ready_for_merge");
    // Checks passed, but no human approved: nothing merged.
    expect(world.github.merges).toEqual([]);
  });
});
