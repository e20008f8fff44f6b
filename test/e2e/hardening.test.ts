import { describe, expect, it } from "vitest";

import { text, toolUse } from "../helpers/anthropic-fake.js";
import { git } from "../helpers/git-fixtures.js";
import { deliver, examplePayload } from "../helpers/webhooks.js";
import { protectedMatcher } from "../../src/agents/tools.js";
import { useE2E, waitForState } from "./harness.js";
import { INSTALLATION_ID, ISSUE, labeledPayload, PLAN, scriptHappyPath, SECRET, USAGE } from "./scenario.js";

const boot = useE2E();

describe("protected paths", () => {
  it("cannot be reached by another spelling of the path", () => {
    const isProtected = protectedMatcher([".github/workflows/**"]);
    for (const spelling of [
      ".github/workflows/ci.yml",
      "./.github/workflows/ci.yml",
      "src/../.github/workflows/ci.yml",
      ".github/./workflows/ci.yml",
      ".github//workflows/ci.yml",
    ]) {
      expect(isProtected(spelling)).toBe(true);
    }
    expect(isProtected("src/ci.yml")).toBe(false);
  });

  it("changed through run_command are discarded before the commit, and the summary says so", async () => {
    const { app, world } = await boot();
    world.anthropic.script("architect", { content: [toolUse("submit_plan", PLAN)], usage: USAGE.architect });
    world.anthropic.script(
      "coder",
      { content: [toolUse("run_command", { command: "mkdir -p .github/workflows && echo 'on: push' > .github/workflows/evil.yml" })], usage: USAGE.coder[0]! },
      { content: [toolUse("edit_file", { path: "src/greet.js", old_text: '"Hello " + name', new_text: '"Hello, " + name + "!"' })], usage: USAGE.coder[1]! },
      { content: [text("- Changed the greeting.")], usage: USAGE.coder[2]! },
    );
    world.anthropic.script("tester", { content: [toolUse("submit_judgement", { items: [] })], usage: USAGE.tester });
    world.anthropic.script("reviewer", { content: [toolUse("submit_review", { event: "approve", body: "ok", comments: [] })], usage: USAGE.reviewer });
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await waitForState(app, "ready_for_merge");
    const files = git(["--git-dir", world.bare, "ls-tree", "-r", "--name-only", "mc/issue-7-friendlier-greeting"]);
    expect(files.split("\n")).not.toContain(".github/workflows/evil.yml");
    expect(files.split("\n")).toContain("src/greet.js");
    const message = git(["--git-dir", world.bare, "log", "-1", "--format=%B", "mc/issue-7-friendlier-greeting"]);
    expect(message).toContain("Changes to protected paths were discarded");
  });
});

describe("marker comments", () => {
  it("a marker pasted by someone else is never adopted as the app's tracking comment", async () => {
    const { app, world } = await boot();
    const spoof = world.github.addComment(ISSUE, "<!-- mission-control:tracking -->\nI am not the app", "mallory");
    scriptHappyPath(world.anthropic);
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await waitForState(app, "ready_for_merge");
    expect(world.github.comments.find((c) => c.id === spoof.id)?.body).toBe("<!-- mission-control:tracking -->\nI am not the app");
    expect(world.github.requestsTo("PATCH", new RegExp(`/issues/comments/${spoof.id}$`))).toEqual([]);
    const mine = world.github.comments.filter((c) => c.body.startsWith("<!-- mission-control:tracking -->") && c.user.login === world?.github.appLogin);
    expect(mine).toHaveLength(1);
  });
});

describe("a cancelled task", () => {
  it("runs again when the label is added again", async () => {
    const { app, world } = await boot();
    await app.worker.stop(0);
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    const closed = examplePayload("issues", "reopened");
    Object.assign(closed, { action: "closed", repository: labeledPayload({ cloneUrl: world.bare }).repository, installation: { id: INSTALLATION_ID } });
    closed.issue.number = ISSUE;
    closed.issue.state = "closed";
    closed.sender = { ...closed.sender, login: "maintainer", type: "User" };
    await deliver(app.url, { event: "issues", payload: closed, secret: SECRET });
    app.worker.start();
    await waitForState(app, "cancelled");

    scriptHappyPath(world.anthropic);
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await waitForState(app, "ready_for_merge");
    const transitions = await app.db.selectFrom("transitions").select(["from_state", "to_state"]).orderBy("id").execute();
    expect(transitions.map((t) => `${t.from_state}->${t.to_state}`)).toContain("cancelled->planning");
  });
});

describe("commits", () => {
  it("one per logical change when the Coder commits as it goes, each with the person's Co-authored-by trailer", async () => {
    const { app, world } = await boot();
    world.anthropic.script("architect", { content: [toolUse("submit_plan", PLAN)], usage: USAGE.architect });
    world.anthropic.script(
      "coder",
      { content: [toolUse("edit_file", { path: "src/greet.js", old_text: '"Hello " + name', new_text: '"Hello, " + name + "!"' })], usage: USAGE.coder[0]! },
      { content: [toolUse("commit", { message: "Use a comma and an exclamation mark in greet()" })], usage: USAGE.coder[1]! },
      {
        content: [toolUse("edit_file", { path: "README.md", old_text: "Greets people.", new_text: "Greets people: `Hello, <name>!`." })],
        usage: USAGE.coder[2]!,
      },
      { content: [toolUse("commit", { message: "Document the greeting" })], usage: USAGE.coder[2]! },
      { content: [text("- Two commits.")], usage: USAGE.coder[2]! },
    );
    world.anthropic.script("tester", { content: [toolUse("submit_judgement", { items: [] })], usage: USAGE.tester });
    world.anthropic.script("reviewer", { content: [toolUse("submit_review", { event: "approve", body: "ok", comments: [] })], usage: USAGE.reviewer });
    const payload = labeledPayload({ cloneUrl: world.bare });
    await deliver(app.url, { event: "issues", payload, secret: SECRET });
    await waitForState(app, "ready_for_merge");
    const log = git(["--git-dir", world.bare, "log", "--format=%s%n%b%n---", "main..mc/issue-7-friendlier-greeting"]);
    const commits = log
      .split("---")
      .map((c) => c.trim())
      .filter(Boolean);
    expect(commits).toHaveLength(2);
    expect(commits[1]?.split("\n")[0]).toBe("Use a comma and an exclamation mark in greet()");
    expect(commits[0]?.split("\n")[0]).toBe("Document the greeting");
    for (const commit of commits) expect(commit).toContain(`Co-authored-by: maintainer <${payload.sender.id}+maintainer@users.noreply.github.com>`);
    const author = git(["--git-dir", world.bare, "log", "-1", "--format=%an <%ae>", "mc/issue-7-friendlier-greeting"]);
    expect(author).toBe("mission-control-test[bot] <4100000+mission-control-test[bot]@users.noreply.github.com>");
  });
});
