import { readFileSync } from "node:fs";
import path from "node:path";

import { describe, expect, it, vi } from "vitest";

import { type FakeAnthropic, text, toolUse } from "../helpers/anthropic-fake.js";
import type { RunningApp } from "../helpers/app-harness.js";
import { git } from "../helpers/git-fixtures.js";
import type { FakeGitHub } from "../helpers/github-fake.js";
import { deliver, examplePayload } from "../helpers/webhooks.js";
import { commentPayload, waitForReply } from "./command-helpers.js";
import { useE2E, waitForState } from "./harness.js";
import { BRANCH, feedbackElement, firstUserText, headOf, reviewSubmittedPayload, theTask } from "./revision-helpers.js";
import { ISSUE, labeledPayload, PLAN, scriptHappyPath, SECRET, USAGE } from "./scenario.js";
import { CI_FEEDBACK_MAX_BYTES } from "../../src/pipeline/ci-feedback.js";
import { transition } from "../../src/store/transitions.js";

const TRACKING = "<!-- mission-control:tracking -->";
/** A real-looking GitHub Actions job log (~200 KB): `npm test` with vitest, one failing assertion. */
const TEST_JOB_LOG = readFileSync(path.join(import.meta.dirname, "../fixtures/actions-log-npm-vitest.txt"), "utf8");
const ESC = "\u001b";

/** An ESLint job log with 400 errors: far more failing lines than the feedback's cap holds. */
function lintJobLog(): string {
  const at = (s: number) => `2025-03-11T14:05:${String(s % 60).padStart(2, "0")}.${String(s).padStart(7, "0")}Z`;
  const lines = ["##[group]Run npm run lint", "npm run lint", "shell: /usr/bin/bash -e {0}", "##[endgroup]", "", "> widgets@2.7.0 lint", "> eslint .", ""];
  for (let k = 1; k <= 400; k++) {
    const n = String(k).padStart(3, "0");
    lines.push(`/home/runner/work/widgets/widgets/src/generated/file-${n}.ts`);
    lines.push(`  1:7  \u001b[31merror\u001b[39m  'unused${n}' is assigned a value but never used  \u001b[2m@typescript-eslint/no-unused-vars\u001b[22m`);
    lines.push("");
  }
  lines.push(
    "\u001b[31m\u001b[1m✖ 400 problems (400 errors, 0 warnings)\u001b[22m\u001b[39m",
    "",
    "##[error]Process completed with exit code 1.",
    "Post job cleanup.",
    "Cleaning up orphan processes",
  );
  return `\uFEFF${lines.map((l, i) => `${at(i)} ${l}`).join("\n")}\n`;
}

/** An Actions job log where `npm ci` timed out fetching a package: the runner's network, not the change. */
function networkTimeoutJobLog(): string {
  const lines = [
    "##[group]Run npm ci",
    "npm ci",
    "shell: /usr/bin/bash -e {0}",
    "##[endgroup]",
    "npm error code ETIMEDOUT",
    "npm error network request to https://packages.example.test/left-pad/-/left-pad-1.3.0.tgz failed, reason: connect ETIMEDOUT 10.0.0.7:443",
    "npm error network This is a problem related to network connectivity.",
    "##[error]Process completed with exit code 1.",
    "Post job cleanup.",
    "Cleaning up orphan processes",
  ];
  return `\uFEFF${lines.map((l, i) => `2025-03-11T14:06:${String(i).padStart(2, "0")}.0000000Z ${l}`).join("\n")}\n`;
}

/** The repository and installation of the scenario, as GitHub's payloads carry them. */
function repositoryOf(cloneUrl: string) {
  const { repository, installation } = labeledPayload({ cloneUrl });
  return { repository, installation };
}

/** A pull request as check suites and workflow runs list it (same repository). */
function prRef(pullNumber: number, headSha: string) {
  return {
    url: `https://ghe.example.test/api/v3/repos/octo-org/widgets/pulls/${pullNumber}`,
    id: 5_000_000 + pullNumber,
    number: pullNumber,
    head: { ref: BRANCH, sha: headSha, repo: { id: 1296269, url: "https://ghe.example.test/api/v3/repos/octo-org/widgets", name: "widgets" } },
    base: {
      ref: "main",
      sha: "0000000000000000000000000000000000000000",
      repo: { id: 1296269, url: "https://ghe.example.test/api/v3/repos/octo-org/widgets", name: "widgets" },
    },
  };
}

/**
 * GitHub's `workflow_run.completed` example, adapted: our repository and installation, the run
 * (id, check suite, workflow name, head, conclusion), the pull request, and the app's bot as the
 * sender — CI on the app's pull request runs because the app pushed.
 */
function workflowRunPayload(o: {
  cloneUrl: string;
  github: FakeGitHub;
  runId: number;
  checkSuiteId: number;
  name: string;
  headSha: string;
  pullNumber: number;
  conclusion?: string;
}) {
  const payload = examplePayload("workflow_run", "completed", 0);
  Object.assign(payload, repositoryOf(o.cloneUrl));
  const run = payload.workflow_run;
  Object.assign(run, {
    id: o.runId,
    name: o.name,
    check_suite_id: o.checkSuiteId,
    head_sha: o.headSha,
    head_branch: BRANCH,
    event: "pull_request",
    status: "completed",
    conclusion: o.conclusion ?? "failure",
    pull_requests: [prRef(o.pullNumber, o.headSha)],
    repository: payload.repository,
    head_repository: payload.repository,
  });
  payload.workflow.name = o.name;
  payload.sender = { ...payload.sender, login: o.github.appLogin, id: 4_100_000, type: "Bot" };
  return payload;
}

/** GitHub's `check_suite.completed` example, adapted: our repository, the suite's app, head, conclusion and pull request. */
function checkSuitePayload(o: {
  cloneUrl: string;
  github: FakeGitHub;
  suiteId: number;
  appSlug: string;
  appName: string;
  headSha: string;
  pullNumber: number;
  conclusion?: string;
}) {
  const payload = examplePayload("check_suite", "completed", 0);
  Object.assign(payload, repositoryOf(o.cloneUrl));
  const suite = payload.check_suite;
  Object.assign(suite, {
    id: o.suiteId,
    head_sha: o.headSha,
    head_branch: BRANCH,
    after: o.headSha,
    status: "completed",
    conclusion: o.conclusion ?? "failure",
    pull_requests: [prRef(o.pullNumber, o.headSha)],
  });
  suite.app = { ...suite.app, slug: o.appSlug, name: o.appName };
  payload.sender = { ...payload.sender, login: o.github.appLogin, id: 4_100_000, type: "Bot" };
  return payload;
}

/** The Coder's, Tester's and Reviewer's scripts of one revision. */
function scriptRevision(world: { anthropic: FakeAnthropic }) {
  world.anthropic.script(
    "coder",
    {
      content: [toolUse("edit_file", { path: "src/greet.js", old_text: '  return "Hello, " + name + "!";\n', new_text: "  return `Hello, ${name}!`;\n" })],
      usage: USAGE.coder[1]!,
    },
    { content: [text("- Used a template literal in greet().")], usage: USAGE.coder[2]! },
  );
  world.anthropic.script("tester", {
    content: [toolUse("submit_judgement", { items: [{ item: PLAN.definition_of_done[0], status: "met", evidence: "From the test output." }] })],
    usage: USAGE.tester,
  });
  world.anthropic.script("reviewer", { content: [toolUse("submit_review", { event: "approve", body: "Fine.", comments: [] })], usage: USAGE.reviewer });
}

/** Delivers a passing re-run of `headSha` and checks that it was not even queued: the task stays blocked, with no intake and no transition. */
async function expectPassChangesNothing(
  app: RunningApp,
  world: { github: FakeGitHub; bare: string },
  o: { headSha: string; pullNumber: number },
): Promise<void> {
  const transitions = (await app.db.selectFrom("transitions").select("id").execute()).length;
  const intakes = (await intakeJobs(app)).length;
  const rerun = rerunPasses(world, o);
  expect((await deliver(app.url, { event: "workflow_run", payload: rerun, secret: SECRET })).status).toBeLessThan(300);
  await waitForState(app, "blocked");
  expect(await intakeJobs(app)).toHaveLength(intakes);
  expect(await app.db.selectFrom("transitions").select("id").execute()).toHaveLength(transitions);
  expect(world.github.labelsOf(ISSUE)).toContain("mc:blocked");
}

async function reviseJobs(app: RunningApp) {
  return app.db.selectFrom("jobs").select(["id", "payload"]).where("kind", "=", "revise").execute();
}

/** The intake log lines that explain why a CI delivery started nothing. */
function ciSkips(app: RunningApp): string[] {
  return app.logs.filter((l) => l.msg === "CI failure: no revision").map((l) => String(l.reason));
}

/** The intake log lines that explain why a passing CI delivery left the task as it was. */
function ciPassSkips(app: RunningApp): string[] {
  return app.logs.filter((l) => l.msg === "CI passed: task unchanged").map((l) => String(l.reason));
}

async function intakeJobs(app: RunningApp) {
  return app.db.selectFrom("jobs").select("id").where("kind", "=", "intake").execute();
}

const boot = useE2E();

/** Runs the issue to `ready_for_merge`: one pull request, the app's own checks green. */
async function readyPullRequest(options: Parameters<typeof boot>[0] = {}) {
  const { app, world } = await boot(options);
  scriptHappyPath(world.anthropic);
  const labelled = await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
  expect(labelled.status).toBeLessThan(300);
  await waitForState(app, "ready_for_merge");
  expect(world.github.pulls).toHaveLength(1);
  return { app, world, pr: world.github.pulls[0]!, head: headOf(world.bare) };
}

/**
 * Runs the issue to `ready_for_merge`, then the workflow "CI" fails on the head (`npm ci` timed
 * out: job 901 of run 9401) and the Coder finds nothing to fix: the task stops as `blocked`. The
 * stop reads the head's checks once (the failed job is still failed: nothing changes).
 *
 * @returns the world, the failure's payload, and the agents' call counts before the failure
 */
async function stoppedOnUnfixableCi(options: Parameters<typeof boot>[0] = {}) {
  const stopped = await failUnfixably(options);
  await waitForState(stopped.app, "blocked");
  expect(ciPassSkips(stopped.app)).toEqual(["checks_not_passed"]);
  return stopped;
}

/**
 * As {@link stoppedOnUnfixableCi}, without waiting for the stop: returns once the failure's intake
 * queued the revision. With `delayReplyMs`, the Coder's reply on the pull request (the first
 * comment posted there) is answered that late, so the task stays `coding` meanwhile.
 */
async function failUnfixably(options: Parameters<typeof boot>[0] = {}, o: { delayReplyMs?: number } = {}) {
  const { app, world, pr, head } = await readyPullRequest(options);
  const { github, anthropic, bare } = world;
  if (o.delayReplyMs) github.delayNext("POST", new RegExp(`/issues/${pr.number}/comments$`), o.delayReplyMs);
  const calls = (agent: string) => anthropic.requestsOf(agent).length;
  const before = { coder: calls("coder"), tester: calls("tester"), reviewer: calls("reviewer") };
  github.addWorkflowRun({
    id: 9401,
    checkSuiteId: 7401,
    workflowName: "CI",
    headSha: head,
    jobs: [{ id: 901, name: "install", conclusion: "failure", steps: [{ name: "Run npm ci", conclusion: "failure" }], log: networkTimeoutJobLog() }],
  });
  // The Coder reads a file, changes none and explains (naming a person, who must not be pinged).
  const explanation =
    "The install step timed out fetching a package (ETIMEDOUT): a network problem of the runner, not of this change. @octocat, please re-run the checks.";
  anthropic.script(
    "coder",
    { content: [toolUse("read_file", { path: "src/greet.js" })], usage: USAGE.coder[1]! },
    { content: [text(explanation)], usage: USAGE.coder[2]! },
  );
  const payload = workflowRunPayload({ cloneUrl: bare, github, runId: 9401, checkSuiteId: 7401, name: "CI", headSha: head, pullNumber: pr.number });
  expect((await deliver(app.url, { event: "workflow_run", payload, secret: SECRET })).status).toBeLessThan(300);
  return { app, world, pr, head, payload, before };
}

/**
 * A maintainer re-runs workflow run 9401 on `headSha` and its job now passes. The commit's
 * check-runs listing shows the latest attempt of each check (GitHub's default `filter=latest`),
 * so the failed attempt (job 901) is replaced by the re-run's job (902).
 *
 * @returns the re-run's `workflow_run.completed` payload (conclusion `success`)
 */
function rerunPasses(world: { github: FakeGitHub; bare: string }, o: { headSha: string; pullNumber: number }) {
  const { github, bare } = world;
  const failed = github.checkRuns.findIndex((c) => c.id === 901);
  if (failed >= 0) github.checkRuns.splice(failed, 1);
  github.addWorkflowRun({
    id: 9401,
    checkSuiteId: 7401,
    workflowName: "CI",
    headSha: o.headSha,
    jobs: [{ id: 902, name: "install", conclusion: "success", steps: [{ name: "Run npm ci", conclusion: "success" }], log: "added 1 package" }],
  });
  return workflowRunPayload({
    cloneUrl: bare,
    github,
    runId: 9401,
    checkSuiteId: 7401,
    name: "CI",
    headSha: o.headSha,
    pullNumber: o.pullNumber,
    conclusion: "success",
  });
}

describe("the repository's CI feeds the Coder", () => {
  it("a failing Actions run on the app's PR leads to one revision whose Coder request has the failing log lines and nothing past the cap", async () => {
    const { app, world, pr, head } = await readyPullRequest();
    const { github, anthropic, bare } = world;
    const coderCallsBefore = anthropic.requestsOf("coder").length;
    github.addWorkflowRun({
      id: 9001,
      checkSuiteId: 7001,
      workflowName: "CI",
      headSha: head,
      jobs: [
        { id: 501, name: "build", conclusion: "success", steps: [{ name: "Run npm run build", conclusion: "success" }], log: "never read" },
        {
          id: 502,
          name: "test (20.x)",
          conclusion: "failure",
          steps: [
            { name: "Set up job", conclusion: "success" },
            { name: "Run npm ci", conclusion: "success" },
            { name: "Run npm test -- --reporter=verbose", conclusion: "failure" },
          ],
          log: TEST_JOB_LOG,
        },
        { id: 503, name: "lint", conclusion: "failure", steps: [{ name: "Run npm run lint", conclusion: "failure" }], log: lintJobLog() },
      ],
    });
    scriptRevision(world);

    const payload = workflowRunPayload({ cloneUrl: bare, github, runId: 9001, checkSuiteId: 7001, name: "CI", headSha: head, pullNumber: pr.number });
    const delivery = await deliver(app.url, { event: "workflow_run", payload, secret: SECRET });
    expect(delivery.status).toBeLessThan(300);
    await waitForState(app, "ready_for_merge");

    // One revision: one revise job, two more Coder calls, a new head tested and reviewed.
    expect(await reviseJobs(app)).toHaveLength(1);
    const task = await theTask(app);
    expect(task.rework_cycles).toBe(1);
    expect(headOf(bare)).not.toBe(head);
    const coder = anthropic.requestsOf("coder");
    expect(coder).toHaveLength(coderCallsBefore + 2);

    // The Coder's request: <feedback source="ci"> with the failing lines of both failed jobs.
    const feedback = feedbackElement(firstUserText(coder[coderCallsBefore]));
    expect(feedback).toBeDefined();
    const fb = feedback ?? "";
    expect(fb).toContain('<feedback source="ci" requested_by="mission-control">');
    expect(fb).toContain(`The repository's own CI failed on ${head.slice(0, 12)}`);
    expect(fb).toContain("Failed: `CI / test (20.x)` (failure), `CI / lint` (failure).");
    expect(fb).toContain("Failed step: `Run npm test -- --reporter=verbose`.");
    for (const line of [
      " FAIL  test/greet.test.ts > greet > says hello with a comma and an exclamation mark",
      "AssertionError: expected 'Hello Ada' to be 'Hello, Ada!' // Object.is equality",
      "- Hello, Ada!",
      "+ Hello Ada",
      '      6|     expect(greet("Ada")).toBe("Hello, Ada!");',
      "##[error]Process completed with exit code 1.",
      "  1:7  error  'unused001' is assigned a value but never used  @typescript-eslint/no-unused-vars",
      "✖ 400 problems (400 errors, 0 warnings)",
    ]) {
      expect(fb.split("\n")).toContain(line);
    }
    // Nothing past the cap: the whole feedback fits in it, the lint errors that did not fit are
    // cut (and marked), and nothing of the steps that passed, of the post-job steps or of the job that passed.
    const inner = fb.replace(/^<feedback[^>]*>\n/, "").replace(/\n<\/feedback>$/, "");
    expect(Buffer.byteLength(inner.trim(), "utf8")).toBeLessThanOrEqual(CI_FEEDBACK_MAX_BYTES);
    expect(fb).not.toContain("'unused300'");
    expect(fb).toMatch(/the first \d+ of its \d+ error lines; the rest did not fit/);
    expect(fb).not.toContain("npm warn deprecated");
    expect(fb).not.toContain("vite v6.2.1");
    expect(fb).not.toContain("Cleaning up orphan processes");
    expect(fb).not.toContain("never read");
    expect(fb).not.toContain(ESC);
    expect(fb).not.toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/m);
    // The token a test printed never reaches the model.
    expect(fb).toContain("with token [REDACTED]");
    expect(JSON.stringify(coder.map((r) => r.body))).not.toContain("ghp_16C7e42F292c6912E7710c838347Ae178B4a");

    // GitHub was asked for the run's jobs and the failed jobs' logs only; the log host got no token.
    expect(github.requestsTo("GET", /\/actions\/runs\/9001\/jobs$/)).toHaveLength(1);
    expect(github.requestsTo("GET", /\/actions\/jobs\/\d+\/logs$/).map((r) => r.path.split("/")[6])).toEqual(["502", "503"]);
    expect(github.logRequests.map((r) => r.path.split("?")[0])).toEqual(["/job-logs/502", "/job-logs/503"]);
    for (const r of github.logRequests) expect(r.headers.authorization).toBeUndefined();

    // The tracking comment names the failing checks and the commit; the reply names the cause.
    const tracking = github.comments.filter((c) => c.body.startsWith(TRACKING));
    expect(tracking).toHaveLength(1);
    expect(tracking[0]?.body).toContain(`🔴 The repository's checks failed on \`${head.slice(0, 7)}\`: \`CI / test (20.x)\`, \`CI / lint\`.`);
    expect(tracking[0]?.body).toContain("Rework cycles: 1");
    const replies = github.comments.filter((c) => c.issue_number === pr.number && c.body.includes("Revision for the repository's failing checks"));
    expect(replies).toHaveLength(1);
    const moved = await app.db
      .selectFrom("transitions")
      .select(["from_state", "to_state", "actor", "reason"])
      .where("to_state", "=", "changes_requested")
      .execute();
    expect(moved).toEqual([{ from_state: "ready_for_merge", to_state: "changes_requested", actor: "mission-control", reason: "revision requested (ci)" }]);

    // The same failure of the old head, delivered again (a new delivery): it is an older head now.
    const again = await deliver(app.url, { event: "workflow_run", payload, secret: SECRET });
    expect(again.status).toBeLessThan(300);
    await waitForState(app, "ready_for_merge");
    expect(await reviseJobs(app)).toHaveLength(1);
    expect(anthropic.requestsOf("coder")).toHaveLength(coderCallsBefore + 2);
    expect(ciSkips(app)).toEqual(["older_head"]);
    expect(anthropic.remaining()).toEqual({ architect: 0, coder: 0, tester: 0, reviewer: 0 });
  }, 120_000);

  it("a second completion for the same head starts nothing: one revision per head", async () => {
    const { app, world, pr, head } = await readyPullRequest();
    const { github, anthropic, bare } = world;
    github.addWorkflowRun({
      id: 9101,
      checkSuiteId: 7101,
      workflowName: "CI",
      headSha: head,
      jobs: [{ id: 601, name: "test", conclusion: "failure", log: TEST_JOB_LOG }],
    });
    github.addWorkflowRun({
      id: 9102,
      checkSuiteId: 7102,
      workflowName: "Docs",
      headSha: head,
      jobs: [{ id: 602, name: "links", conclusion: "failure", log: lintJobLog() }],
    });
    scriptRevision(world);
    const coderCallsBefore = anthropic.requestsOf("coder").length;

    // Two workflows fail on the same head, reported one right after the other.
    const first = workflowRunPayload({ cloneUrl: bare, github, runId: 9101, checkSuiteId: 7101, name: "CI", headSha: head, pullNumber: pr.number });
    const second = workflowRunPayload({ cloneUrl: bare, github, runId: 9102, checkSuiteId: 7102, name: "Docs", headSha: head, pullNumber: pr.number });
    expect((await deliver(app.url, { event: "workflow_run", payload: first, secret: SECRET, noWait: true })).status).toBeLessThan(300);
    expect((await deliver(app.url, { event: "workflow_run", payload: second, secret: SECRET, noWait: true })).status).toBeLessThan(300);
    // GitHub Actions also reports the run as a check suite: that event is left to workflow_run.
    const actionsSuite = checkSuitePayload({
      cloneUrl: bare,
      github,
      suiteId: 7101,
      appSlug: "github-actions",
      appName: "GitHub Actions",
      headSha: head,
      pullNumber: pr.number,
    });
    expect((await deliver(app.url, { event: "check_suite", payload: actionsSuite, secret: SECRET, noWait: true })).status).toBeLessThan(300);

    await vi.waitFor(async () => expect((await reviseJobs(app)).length).toBeGreaterThan(0), { timeout: 20_000, interval: 50 });
    await waitForState(app, "ready_for_merge");
    // Whatever waited for the revision finds its head gone; nothing else starts.
    await vi.waitFor(() => expect(ciSkips(app)).toEqual(["older_head"]), { timeout: 60_000, interval: 100 });
    await waitForState(app, "ready_for_merge");
    expect(await reviseJobs(app)).toHaveLength(1);
    expect(anthropic.requestsOf("coder")).toHaveLength(coderCallsBefore + 2);
    expect((await theTask(app)).rework_cycles).toBe(1);
    const fb = feedbackElement(firstUserText(anthropic.requestsOf("coder")[coderCallsBefore])) ?? "";
    expect(fb).toContain("Failed: `CI / test` (failure).");
    expect(app.logs.filter((l) => l.msg === "CI completion handled" && l.outcome === "enqueued")).toHaveLength(2);
    expect(app.logs.some((l) => l.msg === "CI failure: the issue has work queued; looking again after it")).toBe(true);
  }, 120_000);

  it("the app's own check runs never trigger it; another app's failing checks do, with their output and annotations", async () => {
    const { app, world, pr, head } = await readyPullRequest();
    const { github, anthropic, bare } = world;
    const coderCallsBefore = anthropic.requestsOf("coder").length;
    const slug = github.appLogin.replace(/\[bot\]$/, "");
    // The app's own suite on the head, failed (its own Tests check run).
    github.addForeignCheckRun({
      name: "Mission Control / Tests",
      appSlug: slug,
      checkSuiteId: 8001,
      headSha: head,
      conclusion: "failure",
      output: { title: "Tests failed", summary: "1 failed" },
    });
    const own = checkSuitePayload({
      cloneUrl: bare,
      github,
      suiteId: 8001,
      appSlug: slug,
      appName: "Mission Control (test)",
      headSha: head,
      pullNumber: pr.number,
    });
    expect((await deliver(app.url, { event: "check_suite", payload: own, secret: SECRET })).status).toBeLessThan(300);
    await waitForState(app, "ready_for_merge");
    expect(await reviseJobs(app)).toHaveLength(0);
    expect(github.requestsTo("GET", /\/check-suites\//)).toHaveLength(0);
    expect(anthropic.requestsOf("coder")).toHaveLength(coderCallsBefore);

    // Another app's suite fails on the same head: a revision with its output and annotations.
    github.addForeignCheckRun({
      name: "Type check",
      appSlug: "octocoders-linter",
      checkSuiteId: 8002,
      headSha: head,
      conclusion: "failure",
      output: { title: "1 error", summary: "Type check found **1 error**.", text: "src/greet.js: greet() must return a template literal" },
      annotations: [
        {
          path: "src/greet.js",
          start_line: 2,
          end_line: 2,
          annotation_level: "failure",
          title: "prefer-template",
          message: "Unexpected string concatenation.",
        },
      ],
    });
    scriptRevision(world);
    const other = checkSuitePayload({
      cloneUrl: bare,
      github,
      suiteId: 8002,
      appSlug: "octocoders-linter",
      appName: "octocoders-linter",
      headSha: head,
      pullNumber: pr.number,
    });
    expect((await deliver(app.url, { event: "check_suite", payload: other, secret: SECRET })).status).toBeLessThan(300);
    await waitForState(app, "ready_for_merge");
    expect(await reviseJobs(app)).toHaveLength(1);
    const fb = feedbackElement(firstUserText(anthropic.requestsOf("coder")[coderCallsBefore])) ?? "";
    expect(fb).toContain("Failed: `Type check` (failure).");
    expect(fb).toContain("Reported by the check's app (`octocoders-linter`):");
    expect(fb).toContain("src/greet.js: greet() must return a template literal");
    expect(fb).toContain("- src/greet.js:2 failure prefer-template: Unexpected string concatenation.");
    // The app's own failed check on that commit is not even named.
    expect(fb).not.toContain("Mission Control / Tests");
    expect(github.requestsTo("GET", /\/check-runs\/\d+\/annotations$/)).toHaveLength(1);
  }, 120_000);

  it("a CI failure counts against max_rework_cycles: at the limit the task stops as blocked and a human is asked", async () => {
    const { app, world, pr, head } = await readyPullRequest({ repoConfigYaml: "coder:\n  max_rework_cycles: 0\n" });
    const { github, anthropic, bare } = world;
    const coderCallsBefore = anthropic.requestsOf("coder").length;
    github.addWorkflowRun({
      id: 9301,
      checkSuiteId: 7301,
      workflowName: "CI",
      headSha: head,
      jobs: [{ id: 801, name: "test (20.x)", conclusion: "failure", log: TEST_JOB_LOG }],
    });
    const payload = workflowRunPayload({ cloneUrl: bare, github, runId: 9301, checkSuiteId: 7301, name: "CI", headSha: head, pullNumber: pr.number });
    expect((await deliver(app.url, { event: "workflow_run", payload, secret: SECRET })).status).toBeLessThan(300);
    await waitForState(app, "blocked");
    expect(anthropic.requestsOf("coder")).toHaveLength(coderCallsBefore);
    const task = await theTask(app);
    expect(task.blocked_reason).toContain("the repository's failing checks (`CI / test (20.x)`).");
    const asked = github.comments.filter((c) => c.issue_number === pr.number && c.body.includes("revised this pull request 0 times"));
    expect(asked).toHaveLength(1);
    expect(github.labelsOf(ISSUE)).toContain("mc:blocked");
    const tracking = github.comments.find((c) => c.body.startsWith(TRACKING));
    expect(tracking?.body).toContain("🔴 The repository's checks failed on");
    // A stopped task waits for a person: a further failure starts nothing.
    const again = await deliver(app.url, { event: "workflow_run", payload, secret: SECRET });
    expect(again.status).toBeLessThan(300);
    await waitForState(app, "blocked");
    expect(ciSkips(app)).toEqual(["task_stopped"]);
  }, 120_000);

  it("ci.ignore_checks and ci.fix_failures: false start nothing", async () => {
    const { app, world, pr, head } = await readyPullRequest({ repoConfigYaml: "ci:\n  ignore_checks: ['CI / lint*']\n" });
    const { github, anthropic, bare } = world;
    const coderCallsBefore = anthropic.requestsOf("coder").length;
    github.addWorkflowRun({
      id: 9201,
      checkSuiteId: 7201,
      workflowName: "CI",
      headSha: head,
      jobs: [{ id: 701, name: "lint (eslint)", conclusion: "failure", log: lintJobLog() }],
    });
    const payload = workflowRunPayload({ cloneUrl: bare, github, runId: 9201, checkSuiteId: 7201, name: "CI", headSha: head, pullNumber: pr.number });
    expect((await deliver(app.url, { event: "workflow_run", payload, secret: SECRET })).status).toBeLessThan(300);
    await waitForState(app, "ready_for_merge");
    expect(ciSkips(app)).toEqual(["all_ignored"]);
    expect(github.requestsTo("GET", /\/actions\/jobs\/\d+\/logs$/)).toHaveLength(0);

    // The stored config is what counts (like every stage's): switch the feature off in it.
    const task = await theTask(app);
    await app.db
      .updateTable("tasks")
      .set({ config: JSON.stringify({ ...JSON.parse(task.config), ci: { fix_failures: false, ignore_checks: [] } }) })
      .where("id", "=", task.id)
      .execute();
    expect((await deliver(app.url, { event: "workflow_run", payload, secret: SECRET })).status).toBeLessThan(300);
    await waitForState(app, "ready_for_merge");
    expect(ciSkips(app)).toEqual(["all_ignored", "fix_failures_off"]);
    expect(await reviseJobs(app)).toHaveLength(0);
    expect(anthropic.requestsOf("coder")).toHaveLength(coderCallsBefore);
    expect(github.labelsOf(ISSUE)).toContain("mc:ready_for_merge");
  }, 120_000);

  it("a failure the change cannot fix: the Coder changes nothing, one reply with its reason, the task blocked, nothing pushed or tested", async () => {
    const { app, world, pr, head, payload, before } = await stoppedOnUnfixableCi();
    const { github, anthropic, bare } = world;
    const calls = (agent: string) => anthropic.requestsOf(agent).length;

    // Blocked (not failed), with the reason; the mc:blocked label on the issue.
    const task = await theTask(app);
    expect(task.failure_reason).toBeNull();
    expect(task.blocked_reason).toContain(`The Coder made no change for the failing checks (\`CI / install\`) on \`${head.slice(0, 7)}\``);
    expect(task.blocked_reason).toContain("`/code <instructions>`");
    expect(github.labelsOf(ISSUE)).toContain("mc:blocked");
    expect(github.labelsOf(ISSUE)).not.toContain("mc:failed");
    const last = await app.db.selectFrom("transitions").select(["from_state", "to_state", "reason"]).orderBy("id", "desc").executeTakeFirstOrThrow();
    expect(last).toEqual({ from_state: "coding", to_state: "blocked", reason: "CI failure not fixable by a change" });
    const tracking = github.comments.filter((c) => c.body.startsWith(TRACKING));
    expect(tracking).toHaveLength(1);
    expect(tracking[0]?.body).toContain("The Coder made no change for the failing checks");

    // One reply on the pull request: the check, the commit, the Coder's reason — and no one pinged.
    const replies = github.comments.filter((c) => c.issue_number === pr.number && c.body.startsWith(`<!-- mission-control:ci-no-change:${head} -->`));
    expect(replies).toHaveLength(1);
    const reply = replies[0]?.body ?? "";
    expect(reply).toContain(`Mission Control looked at the failing checks (\`CI / install\`) on ${head.slice(0, 7)} and made no change`);
    expect(reply).toContain("> The install step timed out fetching a package (ETIMEDOUT): a network problem of the runner, not of this change.");
    expect(reply).toContain("@&#8203;octocat, please re-run the checks.");
    expect(reply).not.toMatch(/@octocat/);
    expect(reply).toContain("re-run the failed checks");
    expect(reply).toContain("`/code <instructions>`");
    expect(github.comments.filter((c) => c.issue_number === pr.number && c.body.includes("Revision for the repository's failing checks"))).toHaveLength(0);

    // Nothing pushed, nothing tested or reviewed: the Coder's two calls only.
    expect(headOf(bare)).toBe(head);
    expect(calls("coder")).toBe(before.coder + 2);
    expect(calls("tester")).toBe(before.tester);
    expect(calls("reviewer")).toBe(before.reviewer);
    expect(await reviseJobs(app)).toHaveLength(1);
    expect(task.rework_cycles).toBe(1);

    // The same failure delivered again: the task waits for a person, nothing starts, no second reply.
    expect((await deliver(app.url, { event: "workflow_run", payload, secret: SECRET })).status).toBeLessThan(300);
    await waitForState(app, "blocked");
    expect(ciSkips(app)).toEqual(["task_stopped"]);
    expect(await reviseJobs(app)).toHaveLength(1);
    expect(calls("coder")).toBe(before.coder + 2);
    expect(github.comments.filter((c) => c.body.startsWith("<!-- mission-control:ci-no-change:"))).toHaveLength(1);
    expect(anthropic.remaining()).toEqual({ architect: 0, coder: 0, tester: 0, reviewer: 0 });
  }, 120_000);

  it("the checks pass on a re-run of the same head: ready for merge again, once every check passed — label switched, one note, no comment, no agent call", async () => {
    const { app, world, pr, head } = await stoppedOnUnfixableCi();
    const { github, anthropic, bare } = world;
    const calls = {
      coder: anthropic.requestsOf("coder").length,
      tester: anthropic.requestsOf("tester").length,
      reviewer: anthropic.requestsOf("reviewer").length,
    };
    const comments = github.comments.length;
    const stageJobs = async () =>
      (await app.db.selectFrom("jobs").select("id").where("kind", "in", ["plan", "code", "revise", "test", "review", "merge"]).execute()).length;
    const stageJobsBefore = await stageJobs();
    const transitionsBefore = await app.db.selectFrom("transitions").select("id").execute();
    const tracking = () => github.comments.filter((c) => c.body.startsWith(TRACKING));
    expect(tracking()[0]?.body).toContain(`⏸️ Nothing to fix for the failed checks on \`${head.slice(0, 7)}\``);
    // Another app's check on the head is still running when the workflow's re-run passes.
    const docs = github.addForeignCheckRun({ name: "Docs preview", appSlug: "octo-docs", checkSuiteId: 8501, headSha: head, conclusion: "success" });
    const docsRun = github.checkRuns.find((c) => c.id === docs)!;
    Object.assign(docsRun, { status: "in_progress", conclusion: null });

    const rerun = rerunPasses(world, { headSha: head, pullNumber: pr.number });
    expect((await deliver(app.url, { event: "workflow_run", payload: rerun, secret: SECRET })).status).toBeLessThan(300);
    await waitForState(app, "blocked");
    expect(ciPassSkips(app)).toEqual(["checks_not_passed", "checks_not_passed"]);
    expect(github.labelsOf(ISSUE)).toContain("mc:blocked");

    // That check passes too (its suite completes): every check on the head passed.
    Object.assign(docsRun, { status: "completed", conclusion: "success" });
    const suite = checkSuitePayload({
      cloneUrl: bare,
      github,
      suiteId: 8501,
      appSlug: "octo-docs",
      appName: "Docs",
      headSha: head,
      pullNumber: pr.number,
      conclusion: "success",
    });
    expect((await deliver(app.url, { event: "check_suite", payload: suite, secret: SECRET })).status).toBeLessThan(300);
    await waitForState(app, "ready_for_merge");

    const task = await theTask(app);
    expect(task.blocked_reason).toBeNull();
    expect(github.labelsOf(ISSUE)).toContain("mc:ready_for_merge");
    expect(github.labelsOf(ISSUE)).not.toContain("mc:blocked");
    const moved = await app.db.selectFrom("transitions").select(["from_state", "to_state", "reason", "actor"]).orderBy("id").execute();
    expect(moved.slice(transitionsBefore.length)).toEqual([
      { from_state: "blocked", to_state: "ready_for_merge", reason: "the repository's checks passed on a re-run", actor: "mission-control" },
    ]);
    // The tracking comment, edited in place: the CI note now says the checks passed; no comment anywhere else.
    expect(tracking()).toHaveLength(1);
    const body = tracking()[0]?.body ?? "";
    expect(body).toContain(`🟢 The repository's checks passed on a re-run of \`${head.slice(0, 7)}\`: ready for merge again.`);
    expect(body).not.toContain("⏸️");
    expect(body).not.toContain("🔴");
    expect(body).toContain("**Ready for merge.**");
    expect(github.comments).toHaveLength(comments);
    // No agent ran, nothing was pushed, no stage job was queued (auto_merge is off: no merge job either).
    expect(anthropic.requestsOf("coder")).toHaveLength(calls.coder);
    expect(anthropic.requestsOf("tester")).toHaveLength(calls.tester);
    expect(anthropic.requestsOf("reviewer")).toHaveLength(calls.reviewer);
    expect(headOf(bare)).toBe(head);
    expect(await stageJobs()).toBe(stageJobsBefore);

    // A later pass on the head (the workflow run again) queues nothing: the task no longer waits for one.
    const intakes = (await intakeJobs(app)).length;
    expect((await deliver(app.url, { event: "workflow_run", payload: rerun, secret: SECRET })).status).toBeLessThan(300);
    await waitForState(app, "ready_for_merge");
    expect(await intakeJobs(app)).toHaveLength(intakes);
    expect(anthropic.remaining()).toEqual({ architect: 0, coder: 0, tester: 0, reviewer: 0 });
  }, 120_000);

  it("a pass changes nothing while the task is stopped for another reason: a Coder limit after a /code (the CI stop's note still set)", async () => {
    const { app, world, pr, head } = await stoppedOnUnfixableCi();
    // A maintainer's `/code` resumed the task and the Coder then stopped at a limit, changing nothing:
    // the stop of the CI failure is over, though its note is still on the task.
    const task = await theTask(app);
    await transition(app.db, task.id, "changes_requested", { reason: "revision requested (command)", actor: "maintainer" });
    await transition(app.db, task.id, "coding", { reason: "revising after command", actor: "maintainer" });
    await transition(app.db, task.id, "blocked", { reason: "coder limit: max_turns", actor: "maintainer" });
    expect(JSON.parse((await theTask(app)).tracking_notes ?? "{}")).toHaveProperty("ci-not-fixable");
    await expectPassChangesNothing(app, world, { headSha: head, pullNumber: pr.number });
  }, 120_000);

  it("a pass changes nothing for a task the rework limit stopped after a CI failure", async () => {
    const { app, world, pr, head } = await readyPullRequest({ repoConfigYaml: "coder:\n  max_rework_cycles: 0\n" });
    const { github, bare } = world;
    github.addWorkflowRun({
      id: 9401,
      checkSuiteId: 7401,
      workflowName: "CI",
      headSha: head,
      jobs: [{ id: 901, name: "install", conclusion: "failure", log: networkTimeoutJobLog() }],
    });
    const failure = workflowRunPayload({ cloneUrl: bare, github, runId: 9401, checkSuiteId: 7401, name: "CI", headSha: head, pullNumber: pr.number });
    expect((await deliver(app.url, { event: "workflow_run", payload: failure, secret: SECRET })).status).toBeLessThan(300);
    await waitForState(app, "blocked");
    await expectPassChangesNothing(app, world, { headSha: head, pullNumber: pr.number });
  }, 120_000);

  it("a pass on another commit than the head the task stopped on changes nothing", async () => {
    const { app, world, pr } = await stoppedOnUnfixableCi();
    const { github } = world;
    // An older commit (the default branch's, below the pull request's), whose checks all passed.
    const older = git(["--git-dir", world.bare, "rev-parse", "refs/heads/main"]);
    const payload = rerunPasses(world, { headSha: older, pullNumber: pr.number });
    const transitions = (await app.db.selectFrom("transitions").select("id").execute()).length;
    expect((await deliver(app.url, { event: "workflow_run", payload, secret: SECRET })).status).toBeLessThan(300);
    await waitForState(app, "blocked");
    expect(ciPassSkips(app)).toEqual(["checks_not_passed", "older_head"]);
    expect(await app.db.selectFrom("transitions").select("id").execute()).toHaveLength(transitions);
    expect(github.labelsOf(ISSUE)).toContain("mc:blocked");
    expect(github.requestsTo("GET", /\/commits\/[^/]+\/check-runs/).filter((r) => r.path.includes(older))).toHaveLength(0);
  }, 120_000);

  it("with auto_merge, an approval given while the task was stopped merges once the checks pass on a re-run", async () => {
    const { app, world, pr, head } = await stoppedOnUnfixableCi({ repoConfigYaml: "auto_merge: true\n" });
    const { github, bare } = world;
    const reviewId = github.addHumanReview(pr.number, { login: "maintainer", state: "APPROVED", body: "LGTM" });
    const approval = reviewSubmittedPayload({ cloneUrl: bare, pullNumber: pr.number, reviewId, state: "approved" });
    expect((await deliver(app.url, { event: "pull_request_review", payload: approval, secret: SECRET })).status).toBeLessThan(300);
    await waitForState(app, "blocked");
    expect(github.merges).toEqual([]);

    const rerun = rerunPasses(world, { headSha: head, pullNumber: pr.number });
    expect((await deliver(app.url, { event: "workflow_run", payload: rerun, secret: SECRET })).status).toBeLessThan(300);
    await vi.waitFor(() => expect(github.merges).toHaveLength(1), { timeout: 30_000, interval: 50 });
    expect(github.merges[0]).toMatchObject({ pull: pr.number, sha: head, method: "squash" });
  }, 120_000);

  it("a re-run that passed while the Coder worked is not lost: the stop reads the head's checks once, and the task is ready for merge again", async () => {
    const { app, world, pr, head } = await failUnfixably({}, { delayReplyMs: 3_000 });
    const { github } = world;
    // The Coder is done and its reply on the pull request is on its way (held back): the task is still `coding`.
    await vi.waitFor(() => expect(github.requestsTo("POST", new RegExp(`/issues/${pr.number}/comments$`))).toHaveLength(1), {
      timeout: 30_000,
      interval: 25,
    });
    expect((await theTask(app)).stage).toBe("coding");
    // A maintainer re-ran the flaky job and it passed: the task is not stopped (yet), so the handler queues nothing
    // (an intake would wait in the issue's lane behind the code job).
    const intakes = (await intakeJobs(app)).length;
    const rerun = rerunPasses(world, { headSha: head, pullNumber: pr.number });
    expect((await deliver(app.url, { event: "workflow_run", payload: rerun, secret: SECRET })).status).toBeLessThan(300);
    expect(await intakeJobs(app)).toHaveLength(intakes);
    expect((await theTask(app)).stage).toBe("coding");

    await waitForState(app, "ready_for_merge");
    const moved = await app.db.selectFrom("transitions").select(["from_state", "to_state", "reason"]).orderBy("id", "desc").limit(2).execute();
    expect(moved.reverse()).toEqual([
      { from_state: "coding", to_state: "blocked", reason: "CI failure not fixable by a change" },
      { from_state: "blocked", to_state: "ready_for_merge", reason: "the repository's checks passed on a re-run" },
    ]);
    expect(ciPassSkips(app)).toEqual([]);
    // The stop's own read of the head's checks moved it (no delivery did).
    expect(app.logs.filter((l) => l.msg === "CI passed: the task is ready for merge again").map((l) => l.name)).toEqual(["re-check after the stop"]);
    expect(github.labelsOf(ISSUE)).toContain("mc:ready_for_merge");
    expect(github.comments.filter((c) => c.body.startsWith(`<!-- mission-control:ci-no-change:${head} -->`))).toHaveLength(1);
  }, 120_000);

  it("ci.ignore_checks `CI / coverage` also ignores the commit's check run `coverage` when the checks pass on a re-run", async () => {
    const { app, world, pr, head } = await stoppedOnUnfixableCi({ repoConfigYaml: "ci:\n  ignore_checks: ['CI / coverage']\n" });
    // The workflow's coverage job fails too; the commit's list of check runs names it `coverage`, without its workflow.
    world.github.addForeignCheckRun({ name: "coverage", appSlug: "github-actions", checkSuiteId: 7401, headSha: head, conclusion: "failure" });
    const rerun = rerunPasses(world, { headSha: head, pullNumber: pr.number });
    expect((await deliver(app.url, { event: "workflow_run", payload: rerun, secret: SECRET })).status).toBeLessThan(300);
    await waitForState(app, "ready_for_merge");
    // Only the stop's own read of the checks found one not passed (the install job, failed then).
    expect(ciPassSkips(app)).toEqual(["checks_not_passed"]);
    expect(world.github.labelsOf(ISSUE)).toContain("mc:ready_for_merge");
  }, 120_000);

  it("/stop on the stopped task ends its wait: it stays blocked, says so, and a later passing re-run changes nothing", async () => {
    const { app, world, pr, head } = await stoppedOnUnfixableCi();
    const { github } = world;
    const { payload, commentId } = commentPayload({ cloneUrl: world.bare, body: "/stop" });
    expect((await deliver(app.url, { event: "issue_comment", payload, secret: SECRET })).status).toBeLessThan(300);
    const reply = await waitForReply(github, commentId);
    expect(reply).toContain(`#${ISSUE} stays \`blocked\` and will no longer return to ready for merge on its own`);
    expect(reply).not.toContain("Nothing is running");
    await waitForState(app, "blocked");
    const task = await theTask(app);
    expect(JSON.parse(task.tracking_notes ?? "{}")).not.toHaveProperty("ci-not-fixable");
    expect(task.blocked_reason).toContain("@maintainer stopped the wait for a passing re-run");
    const tracking = github.comments.find((c) => c.body.startsWith(TRACKING))?.body ?? "";
    expect(tracking).not.toContain("Nothing to fix for the failed checks");
    expect(tracking).not.toContain("Re-run the failed checks");
    await expectPassChangesNothing(app, world, { headSha: head, pullNumber: pr.number });
  }, 120_000);

  it("/retry on the stopped task runs no Coder: one reply names the ways on", async () => {
    const { app, world, head } = await stoppedOnUnfixableCi();
    const { github, anthropic } = world;
    const coder = anthropic.requestsOf("coder").length;
    const transitions = (await app.db.selectFrom("transitions").select("id").execute()).length;
    const coderJobs = async () => (await app.db.selectFrom("jobs").select("id").where("kind", "in", ["code", "revise"]).execute()).length;
    const coderJobsBefore = await coderJobs();
    const { payload, commentId } = commentPayload({ cloneUrl: world.bare, body: "/retry" });
    // Delivered twice (a redelivery): one reply all the same.
    for (let k = 0; k < 2; k++) expect((await deliver(app.url, { event: "issue_comment", payload, secret: SECRET })).status).toBeLessThan(300);
    const reply = await waitForReply(github, commentId);
    await waitForState(app, "blocked");
    expect(reply).toContain(`The Coder found nothing to fix for the failing checks on \`${head.slice(0, 7)}\`, so \`/retry\` does not run it again.`);
    expect(reply).toContain(`re-run the failed checks (once they pass, #${ISSUE} is ready for merge again)`);
    expect(reply).toContain("`/code <instructions>`");
    expect(reply).toContain("merge the pull request");
    expect(github.comments.filter((c) => c.body.startsWith(`<!-- mission-control:command:${commentId}:`))).toHaveLength(1);
    expect(anthropic.requestsOf("coder")).toHaveLength(coder);
    expect(await app.db.selectFrom("transitions").select("id").execute()).toHaveLength(transitions);
    expect(await coderJobs()).toBe(coderJobsBefore);
    expect(anthropic.remaining()).toEqual({ architect: 0, coder: 0, tester: 0, reviewer: 0 });
  }, 120_000);
});
