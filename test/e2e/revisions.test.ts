import path from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { text, toolUse } from "../helpers/anthropic-fake.js";
import { type RunningApp, startApp, tempDir } from "../helpers/app-harness.js";
import { fileAt } from "../helpers/git-fixtures.js";
import type { FakeGitHub } from "../helpers/github-fake.js";
import { deliver } from "../helpers/webhooks.js";
import {
  BRANCH,
  commitsAhead,
  contentText,
  createWorldWith,
  FAILING_TESTS_FILES,
  feedbackElement,
  filesOn,
  firstUserText,
  headOf,
  reviewSubmittedPayload,
  theTask,
  transitionPairs,
  waitForStage,
} from "./revision-helpers.js";
import { createWorld, ISSUE, labeledPayload, PLAN, scriptHappyPath, SECRET, USAGE } from "./scenario.js";

const TESTS_CHECK = "Mission Control / Tests";
const TRACKING = "<!-- mission-control:tracking -->";

let app: RunningApp | undefined;
let world: ReturnType<typeof createWorldWith> | undefined;
let dirs: ReturnType<typeof tempDir> | undefined;

afterEach(async () => {
  await app?.stop().catch(() => {});
  world?.github.stop();
  world?.anthropic.stop();
  dirs?.cleanup();
  app = undefined;
  world = undefined;
  dirs = undefined;
});

/** Starts a world (made by `make`), a temp dir and the app on it. */
async function boot(make: () => ReturnType<typeof createWorldWith>) {
  dirs = tempDir();
  world = make();
  app = await startApp({ databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "workspaces") });
  return { app, world };
}

async function label(running: RunningApp, bare: string) {
  const response = await deliver(running.url, { event: "issues", payload: labeledPayload({ cloneUrl: bare }), secret: SECRET });
  expect(response.status).toBeLessThan(300);
  return response;
}

function trackingComment(github: FakeGitHub) {
  const found = github.comments.filter((c) => c.body.startsWith(TRACKING));
  expect(found).toHaveLength(1);
  return found[0]!;
}

function testsChecks(github: FakeGitHub) {
  return github.checkRuns.filter((c) => c.name === TESTS_CHECK);
}

const judgement = (status: "met" | "not_met") => ({
  content: [toolUse("submit_judgement", { items: [{ item: PLAN.definition_of_done[0], status, evidence: "From the test output." }] })],
  usage: USAGE.tester,
});

const approval = (body: string) => ({
  content: [toolUse("submit_review", { event: "approve", body, comments: [] })],
  usage: USAGE.reviewer,
});

describe("a human's review on the app's pull request", () => {
  it("a human's REQUEST_CHANGES review produces a second commit on the same branch and a reply", async () => {
    const { app, world } = await boot(() => createWorld());
    const { github, anthropic, bare } = world;
    scriptHappyPath(anthropic);
    await label(app, bare);
    await waitForStage(app, "ready_for_merge");

    expect(github.pulls).toHaveLength(1);
    const pr = github.pulls[0]!;
    const firstHead = headOf(bare);
    expect(commitsAhead(bare)).toBe(1);
    const coderCallsBefore = anthropic.requestsOf("coder").length;
    expect(coderCallsBefore).toBe(3);

    // The revision's scripts: the Coder edits and sums up, then the Tester and the Reviewer again.
    anthropic.script(
      "coder",
      {
        content: [
          toolUse("edit_file", {
            path: "src/greet.js",
            old_text: '  return "Hello, " + name + "!";\n}\n',
            new_text: '  return "Hello, " + name + "!";\n}\n\nexport function farewell(name) {\n  return "Goodbye, " + name + "!";\n}\n',
          }),
        ],
        usage: USAGE.coder[1]!,
      },
      { content: [text("- Added and exported farewell(); kept the comma in greet().")], usage: USAGE.coder[2]! },
    );
    anthropic.script("tester", judgement("met"));
    anthropic.script("reviewer", approval("farewell() is exported as asked."));

    // A maintainer requests changes, with an inline comment on the line the Coder changed (line 2 of the new file).
    const reviewId = github.addHumanReview(pr.number, {
      login: "maintainer",
      state: "CHANGES_REQUESTED",
      body: "Please also export a farewell() function.",
      comments: [{ path: "src/greet.js", line: 2, body: "Keep the comma." }],
    });
    const payload = reviewSubmittedPayload({ cloneUrl: bare, pullNumber: pr.number, reviewId, state: "changes_requested" });
    const delivery = await deliver(app.url, { event: "pull_request_review", payload, secret: SECRET });
    expect(delivery.status).toBeLessThan(300);
    await waitForStage(app, "ready_for_merge");

    // A second commit on the same branch, still one pull request.
    expect(commitsAhead(bare)).toBe(2);
    const secondHead = headOf(bare);
    expect(secondHead).not.toBe(firstHead);
    expect(fileAt(bare, BRANCH, "src/greet.js")).toContain("export function farewell(name)");
    expect(fileAt(bare, BRANCH, "src/greet.js")).toContain('return "Hello, " + name + "!";');
    expect(github.pulls).toHaveLength(1);
    expect(github.requestsTo("POST", /\/pulls$/)).toHaveLength(1);

    // The revision's first Coder request carries the review (body and inline comment) inside <feedback>.
    const coderRequests = anthropic.requestsOf("coder");
    expect(coderRequests).toHaveLength(coderCallsBefore + 2);
    const revisionPrompt = firstUserText(coderRequests[coderCallsBefore]);
    const feedback = feedbackElement(revisionPrompt);
    expect(feedback).toBeDefined();
    expect(feedback).toContain('<feedback source="review" requested_by="maintainer">');
    expect(feedback).toContain("Please also export a farewell() function.");
    expect(feedback).toContain('<comment path="src/greet.js" line="2" author="maintainer">');
    expect(feedback).toContain("Keep the comma.");
    expect(firstUserText(coderRequests[0])).not.toContain("<feedback");

    // A reply on the pull request naming the new commit.
    const replies = github.comments.filter((c) => c.issue_number === pr.number && c.body.includes("Revision"));
    expect(replies).toHaveLength(1);
    expect(replies[0]?.body).toContain(secondHead.slice(0, 7));
    expect(replies[0]?.body).toContain("@maintainer");
    expect(replies[0]?.body).toContain("src/greet.js");

    // The tests ran again on the new head, and the Reviewer reviewed it.
    const checks = testsChecks(github);
    expect(checks.map((c) => c.head_sha)).toEqual([firstHead, secondHead]);
    expect(checks[1]).toMatchObject({ status: "completed", conclusion: "success" });
    const botReviews = github.reviews.filter((r) => r.user.login === github.appLogin);
    expect(botReviews.map((r) => r.commit_id)).toEqual([firstHead, secondHead]);

    // The lifecycle: one rework cycle, through changes_requested back to ready_for_merge.
    const task = await theTask(app);
    expect(task.rework_cycles).toBe(1);
    expect(task.stage).toBe("ready_for_merge");
    expect(await transitionPairs(app)).toEqual([
      [null, "planning"],
      ["planning", "coding"],
      ["coding", "testing"],
      ["testing", "reviewing"],
      ["reviewing", "ready_for_merge"],
      ["ready_for_merge", "changes_requested"],
      ["changes_requested", "coding"],
      ["coding", "testing"],
      ["testing", "reviewing"],
      ["reviewing", "ready_for_merge"],
    ]);
    const revisionTransitions = await app.db.selectFrom("transitions").select(["to_state", "actor"]).orderBy("id").offset(5).limit(2).execute();
    expect(revisionTransitions).toEqual([
      { to_state: "changes_requested", actor: "maintainer" },
      { to_state: "coding", actor: "maintainer" },
    ]);
    expect(github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:ready_for_merge"]);
    const finalTracking = trackingComment(github).body;
    expect(finalTracking).toContain("**Ready for merge.**");
    expect(finalTracking).toContain("Rework cycles: 1");
    expect(anthropic.remaining()).toEqual({ architect: 0, coder: 0, tester: 0, reviewer: 0 });

    // The same delivery again: recognised, nothing enqueued, no second revision.
    const jobsBefore = await app.db.selectFrom("jobs").select(["id", "kind"]).orderBy("id").execute();
    expect(jobsBefore.filter((j) => j.kind === "revise")).toHaveLength(1);
    const again = await deliver(app.url, { event: "pull_request_review", payload, secret: SECRET, id: delivery.id });
    expect(again.status).toBeLessThan(300);
    await app.worker.idle();
    expect(await app.db.selectFrom("jobs").select(["id", "kind"]).orderBy("id").execute()).toEqual(jobsBefore);
    expect(await app.db.selectFrom("deliveries").select("delivery_id").where("delivery_id", "=", delivery.id).execute()).toHaveLength(1);
    expect(anthropic.requestsOf("coder")).toHaveLength(coderCallsBefore + 2);
    expect(commitsAhead(bare)).toBe(2);
    expect((await theTask(app)).rework_cycles).toBe(1);
  }, 90_000);
});

describe("Coder limits", () => {
  it("the max-turns stop labels mc:blocked", async () => {
    const { app, world } = await boot(() => createWorld({ repoConfigYaml: "coder:\n  max_turns: 2\n" }));
    const { github, anthropic, bare } = world;
    anthropic.script("architect", { content: [toolUse("submit_plan", PLAN)], usage: USAGE.architect });
    anthropic.script(
      "coder",
      {
        content: [
          text("Adding a helper first."),
          toolUse("write_file", { path: "src/farewell.js", content: 'export const farewell = (name) => "Bye " + name;\n' }),
        ],
        usage: USAGE.coder[0]!,
      },
      { content: [toolUse("read_file", { path: "src/greet.js" })], usage: USAGE.coder[1]! },
      // A third turn exists in the script: only the limit keeps it from being requested.
      { content: [text("- Done.")], usage: USAGE.coder[2]! },
    );
    await label(app, bare);
    await waitForStage(app, "blocked");

    // Exactly two Coder calls; the third scripted turn was never requested.
    expect(anthropic.requestsOf("coder")).toHaveLength(2);
    expect(anthropic.remaining().coder).toBe(1);
    expect(anthropic.requestsOf("tester")).toEqual([]);
    expect(anthropic.requestsOf("reviewer")).toEqual([]);

    // The work so far is committed and pushed, and the PR is a draft.
    expect(commitsAhead(bare)).toBe(1);
    expect(fileAt(bare, BRANCH, "src/farewell.js")).toContain("export const farewell");
    expect(github.pulls).toHaveLength(1);
    expect(github.pulls[0]?.draft).toBe(true);
    expect(github.pulls[0]?.head).toBe(BRANCH);

    // Blocked: one mc: label, the task's state, and a tracking comment waiting for a human.
    expect(github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:blocked"]);
    expect(github.labelsOf(ISSUE).filter((l) => l.startsWith("mc:"))).toEqual(["mc:blocked"]);
    const task = await theTask(app);
    expect(task.stage).toBe("blocked");
    expect(task.blocked_reason).toContain("2 turns");
    const history = github.commentHistory.get(trackingComment(github).id)!;
    const last = history.at(-1)!;
    expect(last).toContain("**Waiting for a human:**");
    expect(last).toContain("2 turns");
    expect(last).toContain("| Code | ⏸️ stopped");
    expect(last).not.toContain("⏳");
    expect(testsChecks(github)).toEqual([]);
    const jobs = await app.db.selectFrom("jobs").select(["kind", "state"]).orderBy("id").execute();
    expect(jobs).toEqual([
      { kind: "plan", state: "succeeded" },
      { kind: "code", state: "succeeded" },
    ]);
  }, 60_000);
});

describe("the Tester's failures go back to the Coder", () => {
  it("failing tests get a failure check run and a Coder revision", async () => {
    const { app, world } = await boot(() => createWorldWith(FAILING_TESTS_FILES));
    const { github, anthropic, bare } = world;
    anthropic.script("architect", { content: [toolUse("submit_plan", PLAN)], usage: USAGE.architect });
    // First run: a comma, but no exclamation mark — the repository's test still fails.
    anthropic.script(
      "coder",
      { content: [toolUse("edit_file", { path: "src/greet.js", old_text: '"Hello " + name', new_text: '"Hello, " + name' })], usage: USAGE.coder[0]! },
      { content: [text("- Added the comma.")], usage: USAGE.coder[1]! },
    );
    anthropic.script("tester", judgement("not_met"));
    // The revision: the exclamation mark.
    anthropic.script(
      "coder",
      { content: [toolUse("edit_file", { path: "src/greet.js", old_text: '"Hello, " + name', new_text: '"Hello, " + name + "!"' })], usage: USAGE.coder[0]! },
      { content: [text("- Added the exclamation mark; the test passes.")], usage: USAGE.coder[1]! },
    );
    anthropic.script("tester", judgement("met"));
    anthropic.script("reviewer", approval("Matches the plan and the tests pass."));

    await label(app, bare);
    await waitForStage(app, "ready_for_merge");

    const checks = testsChecks(github);
    expect(checks).toHaveLength(2);
    const [failed, passed] = checks;
    // The first head: failure, with the log's tail in the output.
    const coderRequests = anthropic.requestsOf("coder");
    expect(coderRequests).toHaveLength(4);
    expect(failed).toMatchObject({ status: "completed", conclusion: "failure" });
    expect(failed?.output?.summary).toContain("**Exit code:** 1");
    expect(failed?.output?.text).toContain("## Log");
    expect(failed?.output?.text).toContain("not ok 1 - greet says hello with a comma and an exclamation mark");
    expect(failed?.output?.text).toContain("'Hello, Ada!'");

    // Then a revision whose feedback is the failing tests, with the same log.
    const revisionIndex = coderRequests.findIndex((r) => firstUserText(r).includes('<feedback source="tests"'));
    expect(revisionIndex).toBe(2);
    const feedback = feedbackElement(firstUserText(coderRequests[revisionIndex]))!;
    expect(feedback).toContain("The test command `npm test` failed (exit code 1)");
    expect(feedback).toContain("not ok 1 - greet says hello with a comma and an exclamation mark");
    expect(feedback).toContain("'Hello, Ada!'");

    // The second head: success; the branch has both commits; the first check was on the first commit.
    expect(commitsAhead(bare)).toBe(2);
    const secondHead = headOf(bare);
    expect(passed).toMatchObject({ head_sha: secondHead, status: "completed", conclusion: "success" });
    expect(failed?.head_sha).not.toBe(secondHead);
    expect(fileAt(bare, `${BRANCH}~1`, "src/greet.js")).toContain('return "Hello, " + name;');
    expect(failed?.head_sha).toBe(headOf(bare, `${BRANCH}~1`));
    expect(fileAt(bare, BRANCH, "src/greet.js")).toContain('return "Hello, " + name + "!";');

    // A reply on the PR for the failing tests.
    const pr = github.pulls[0]!;
    expect(github.pulls).toHaveLength(1);
    const replies = github.comments.filter((c) => c.issue_number === pr.number && c.body.includes("Revision for the failing tests"));
    expect(replies).toHaveLength(1);
    expect(replies[0]?.body).toContain(secondHead.slice(0, 7));

    // The Reviewer saw the second head.
    const reviewerRequests = anthropic.requestsOf("reviewer");
    expect(reviewerRequests).toHaveLength(1);
    expect(firstUserText(reviewerRequests[0])).toContain('+  return "Hello, " + name + "!";');
    expect(github.reviews).toHaveLength(1);
    expect(github.reviews[0]?.commit_id).toBe(secondHead);

    const task = await theTask(app);
    expect(task.rework_cycles).toBe(1);
    expect(task.stage).toBe("ready_for_merge");
    expect(task.tests_conclusion).toBe("success");
    expect(await transitionPairs(app)).toEqual([
      [null, "planning"],
      ["planning", "coding"],
      ["coding", "testing"],
      ["testing", "changes_requested"],
      ["changes_requested", "coding"],
      ["coding", "testing"],
      ["testing", "reviewing"],
      ["reviewing", "ready_for_merge"],
    ]);
    expect(anthropic.remaining()).toEqual({ architect: 0, coder: 0, tester: 0, reviewer: 0 });
  }, 90_000);

  it("the rework limit asks a human", async () => {
    const { app, world } = await boot(() => createWorldWith(FAILING_TESTS_FILES, { repoConfigYaml: "coder:\n  max_rework_cycles: 0\n" }));
    const { github, anthropic, bare } = world;
    anthropic.script("architect", { content: [toolUse("submit_plan", PLAN)], usage: USAGE.architect });
    anthropic.script(
      "coder",
      { content: [toolUse("edit_file", { path: "src/greet.js", old_text: '"Hello " + name', new_text: '"Hello, " + name' })], usage: USAGE.coder[0]! },
      { content: [text("- Added the comma.")], usage: USAGE.coder[1]! },
      // Turns a revision would consume: they must stay unused.
      { content: [toolUse("edit_file", { path: "src/greet.js", old_text: '"Hello, " + name', new_text: '"Hello, " + name + "!"' })], usage: USAGE.coder[0]! },
      { content: [text("- Added the exclamation mark.")], usage: USAGE.coder[1]! },
    );
    anthropic.script("tester", judgement("not_met"));
    await label(app, bare);
    await waitForStage(app, "blocked");

    // No revision: two Coder calls, no revise job, one commit.
    expect(anthropic.requestsOf("coder")).toHaveLength(2);
    expect(anthropic.remaining().coder).toBe(2);
    expect(anthropic.requestsOf("coder").some((r) => firstUserText(r).includes("<feedback"))).toBe(false);
    expect(anthropic.requestsOf("reviewer")).toEqual([]);
    const jobs = await app.db.selectFrom("jobs").select(["kind", "state"]).orderBy("id").execute();
    expect(jobs.map((j) => j.kind)).toEqual(["plan", "code", "test"]);
    expect(jobs.every((j) => j.state === "succeeded")).toBe(true);
    expect(commitsAhead(bare)).toBe(1);

    // The failing check run is there; the task is blocked with one mc: label.
    expect(testsChecks(github)).toHaveLength(1);
    expect(testsChecks(github)[0]).toMatchObject({ head_sha: headOf(bare), conclusion: "failure" });
    const task = await theTask(app);
    expect(task.stage).toBe("blocked");
    expect(task.rework_cycles).toBe(0);
    expect(github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:blocked"]);

    // A comment on the pull request asks a human to take over.
    const pr = github.pulls[0]!;
    const onPr = github.comments.filter((c) => c.issue_number === pr.number);
    expect(onPr).toHaveLength(1);
    expect(onPr[0]?.body).toContain("Please take a look");
    expect(onPr[0]?.body).toContain("failing tests");
    expect(onPr[0]?.body).toContain("/code");
    const last = github.commentHistory.get(trackingComment(github).id)!.at(-1)!;
    expect(last).toContain("**Waiting for a human:**");
    expect(last).toContain("A human needs to take it from here");
    expect(last).not.toContain("⏳");
    expect(await transitionPairs(app)).toEqual([
      [null, "planning"],
      ["planning", "coding"],
      ["coding", "testing"],
      ["testing", "blocked"],
    ]);
  }, 60_000);
});

describe("protected paths", () => {
  it("protected paths are refused until /approve", async () => {
    const { app, world } = await boot(() => createWorld());
    const { github, anthropic, bare } = world;
    anthropic.script("architect", { content: [toolUse("submit_plan", PLAN)], usage: USAGE.architect });
    anthropic.script(
      "coder",
      {
        content: [toolUse("write_file", { path: ".github/workflows/ci.yml", content: "on: push\njobs: {}\n" }, "toolu_protected_write")],
        usage: USAGE.coder[0]!,
      },
      {
        content: [toolUse("edit_file", { path: "src/greet.js", old_text: '"Hello " + name', new_text: '"Hello, " + name + "!"' })],
        usage: USAGE.coder[1]!,
      },
      { content: [text("- Changed greet(); the workflow file is protected, so it was left alone.")], usage: USAGE.coder[2]! },
    );
    anthropic.script("tester", judgement("met"));
    anthropic.script("reviewer", approval("The change matches the plan."));
    await label(app, bare);
    await waitForStage(app, "ready_for_merge");

    // The refusal went back to the model as an error tool_result that names /approve.
    const coderRequests = anthropic.requestsOf("coder");
    expect(coderRequests).toHaveLength(3);
    const second = coderRequests[1]!.body;
    const lastMessage = second.messages.at(-1);
    expect(lastMessage.role).toBe("user");
    const result = (lastMessage.content as Array<Record<string, unknown>>).find((b) => b.type === "tool_result" && b.tool_use_id === "toolu_protected_write");
    expect(result).toBeDefined();
    expect(result?.is_error).toBe(true);
    expect(contentText(result?.content)).toContain(".github/workflows/ci.yml");
    expect(contentText(result?.content)).toContain("/approve");

    // The pushed branch has the normal edit and no workflow file.
    expect(filesOn(bare)).not.toContain(".github/workflows/ci.yml");
    expect(filesOn(bare).filter((f) => f.startsWith(".github/"))).toEqual([]);
    expect(fileAt(bare, BRANCH, "src/greet.js")).toContain('return "Hello, " + name + "!";');
    expect(github.pulls).toHaveLength(1);
    expect((await theTask(app)).stage).toBe("ready_for_merge");
  }, 60_000);
});
