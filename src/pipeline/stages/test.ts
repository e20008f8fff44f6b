/**
 * The test stage's report: the repository's tests run in the sandbox on the pull request's head,
 * the Tester judges the plan's Definition of Done, and this module writes the check run
 * "Mission Control / Tests".
 */
import type { Plan } from "../../agents/architect.js";
import type { AgentRuntime } from "../../agents/context.js";
import {
  type CommandOutcome,
  type DodJudgement,
  judgeDefinitionOfDone,
  LOG_TAIL_LINES,
  renderJudgement,
  type SandboxRunner,
  tail,
  type TestReport,
  TESTS_CHECK_NAME,
} from "../../agents/tester.js";
import { loadRepositoryGuidance } from "../../agents/load-instructions.js";
import type { RepositoryGuidance } from "../../agents/instructions.js";
import { isMissionControlError } from "../../domain/errors.js";
import { APP_ACTOR } from "../../domain/jobs.js";
import { redactSecrets } from "../../domain/redact.js";
import { renderDiff } from "../../agents/reviewer.js";
import { detectTestCommand, parseTestCounts } from "../../workspace/test-command.js";
import { prepareWorkspace, workspaceDir } from "../../workspace/workspaces.js";
import type { StageContext } from "../stage-context.js";
import type { StageOutcome } from "../pipeline-deps.js";

import type { CheckConclusion, GitHubPort } from "../../ports/github.js";
import type { PromptSafeText } from "../../prompt/index.js";

/**
 * Runs the repository's tests on the PR head in the sandbox and reports the check run
 * "Mission Control / Tests" on the head sha: in_progress, then completed with success or
 * failure (neutral when there is no test command). The model then judges the plan's
 * Definition of Done against the diff and the test output; that checklist goes into the
 * check run's text. It never turns failing tests into success.
 *
 * Idempotent per head sha: a completed check run of this app for the head is reused.
 *
 * @throws {SandboxUnavailableError} when the sandbox cannot run; the check run is completed as
 *   neutral with that message first
 */
export async function testPullRequest(
  runtime: AgentRuntime,
  deps: { github: GitHubPort; run: SandboxRunner; parseCounts: (output: string) => TestReport["counts"]; signal?: AbortSignal | undefined },
  input: {
    headSha: string;
    plan: Plan | null;
    /** The pull request's patches as the Reviewer renders them for a prompt (`renderDiff(files).text`): already escaped. */
    diffText: PromptSafeText;
    testCommand: { command: string; source: string } | null;
    setupCommand: string | null;
    allowSetupNetwork: boolean;
    /** Milliseconds. */
    timeoutMs: number;
    /** Reads the repository's guidance for the changed files, for the Tester's prompt; called only when the Definition of Done is judged. */
    guidance?: () => Promise<RepositoryGuidance | null>;
  },
): Promise<TestReport> {
  const { github } = deps;
  const externalId = `tests:${input.headSha}`;
  const check = await github.ensureCheckRun({
    name: TESTS_CHECK_NAME,
    headSha: input.headSha,
    externalId,
    status: "in_progress",
    output: { title: "Running tests", summary: input.testCommand ? `\`${input.testCommand.command}\`` : "Looking for a test command" },
  });
  if (check.status === "completed" && check.conclusion) {
    return {
      conclusion: check.conclusion as CheckConclusion,
      checkRun: check,
      command: input.testCommand?.command ?? null,
      exitCode: null,
      counts: null,
      logTail: "",
      judgement: null,
      reused: true,
    };
  }

  if (!input.testCommand) {
    const done = await github.updateCheckRun(check.id, {
      status: "completed",
      conclusion: "neutral",
      output: {
        title: "No test command found",
        summary:
          "No `test.command` in `.github/mission-control.yml`, and none could be detected (package.json, pyproject/pytest, Makefile, go.mod, Cargo.toml).",
      },
    });
    return { conclusion: "neutral", checkRun: done, command: null, exitCode: null, counts: null, logTail: "", judgement: null, reused: false };
  }

  let outcome: CommandOutcome;
  try {
    if (input.setupCommand) {
      const setup = await deps.run(input.setupCommand, { timeoutMs: input.timeoutMs, network: input.allowSetupNetwork, signal: deps.signal });
      if (setup.exitCode !== 0) {
        outcome = { ...setup, command: `${input.setupCommand} (setup)` };
        return await finish(outcome, null);
      }
    }
    outcome = await deps.run(input.testCommand.command, { timeoutMs: input.timeoutMs, network: false, signal: deps.signal });
  } catch (err) {
    if (isMissionControlError(err) && err.code === "sandbox_unavailable") {
      await github.updateCheckRun(check.id, {
        status: "completed",
        conclusion: "neutral",
        output: { title: "Tests could not run", summary: err.userMessage },
      });
    }
    throw err;
  }

  let judgement: DodJudgement | null = null;
  if (input.plan && input.plan.definition_of_done.length > 0) {
    try {
      const guidance = input.guidance ? await input.guidance() : null;
      judgement = await judgeDefinitionOfDone(runtime, input.plan, input.diffText, outcome, guidance);
    } catch (err) {
      // A budget stop or pause during the judgement: report the test results anyway, then stop.
      const reason = isMissionControlError(err) ? err.userMessage : "the judgement failed";
      await finish(outcome, null, `_The Definition of Done was not judged: ${reason}_`);
      throw err;
    }
  }
  return finish(outcome, judgement);

  async function finish(result: CommandOutcome, dod: DodJudgement | null, dodNote?: string): Promise<TestReport> {
    const log = redactSecrets(`${result.stdout}\n${result.stderr}`.trim());
    const counts = deps.parseCounts(log);
    const passed = result.exitCode === 0 && !result.timedOut;
    const conclusion: CheckConclusion = result.timedOut ? "timed_out" : passed ? "success" : "failure";
    const countText = counts ? ` (${counts.passed} passed, ${counts.failed} failed${counts.skipped ? `, ${counts.skipped} skipped` : ""})` : "";
    const title = result.timedOut
      ? `Tests timed out after ${Math.round(result.durationMs / 1000)} s`
      : passed
        ? `Tests passed${countText}`
        : `Tests failed${countText}`;
    const summary = [
      `**Command:** \`${redactSecrets(result.command)}\``,
      `**Exit code:** ${result.exitCode ?? "none (killed)"}`,
      `**Duration:** ${(result.durationMs / 1000).toFixed(1)} s`,
      counts ? `**Tests:** ${counts.passed} passed, ${counts.failed} failed${counts.skipped ? `, ${counts.skipped} skipped` : ""}` : "",
      result.truncated ? "_The output was longer than the cap; its middle was cut (the start and the end are kept)._" : "",
    ]
      .filter(Boolean)
      .join("\n");
    const logTail = tail(log);
    const text = `## Definition of Done\n\n${dodNote ?? renderJudgement(dod)}\n\n## Log (last ${LOG_TAIL_LINES} lines)\n\n\`\`\`\n${logTail.replace(/```/g, "ʼʼʼ")}\n\`\`\``;
    const done = await github.updateCheckRun(check.id, { status: "completed", conclusion, output: { title, summary, text } });
    return { conclusion, checkRun: done, command: result.command, exitCode: result.exitCode, counts, logTail, judgement: dod, reused: false };
  }
}

/**
 * `test`: state `testing`. The test command (`test.command`, or detected) and `test.setup` run in
 * the sandbox on the pull request's head; the check run "Mission Control / Tests" carries the
 * result and the Definition of Done. Next: `review`; on failure `changes_requested` → `revise`.
 */
export async function testStage(ctx: StageContext): Promise<StageOutcome> {
  await ctx.move("testing", "tests started");
  const task = ctx.task;
  const config = ctx.config;
  if (!task.pr_number || !task.branch) throw new Error("the task has no pull request; the code stage must run first");
  const pr = await ctx.github.getPullRequest(task.pr_number);
  const dir = workspaceDir(ctx.deps.workspacesDir, task.owner, task.repo, task.issue_number);
  const { workspace } = await prepareWorkspace({
    dir,
    cloneUrl: task.clone_url,
    token: await ctx.github.createGitToken(),
    defaultBranch: task.default_branch,
    branch: task.branch,
    settings: ctx.deps.git,
  });
  const command = await detectTestCommand(workspace.root, config.test.command);
  const files = await ctx.github.listPullRequestFiles(pr.number);
  const report = await testPullRequest(
    ctx.runtime("tester"),
    { github: ctx.github, run: ctx.deps.sandbox(workspace.root), parseCounts: parseTestCounts, signal: ctx.signal },
    {
      headSha: pr.headSha,
      plan: task.plan ? ctx.plan() : null,
      diffText: renderDiff(files).text,
      testCommand: command,
      setupCommand: config.test.setup ?? null,
      allowSetupNetwork: ctx.deps.allowSetupNetwork,
      timeoutMs: config.test.timeout_minutes * 60_000,
      guidance: () =>
        loadRepositoryGuidance(ctx.github, { ref: task.default_branch, settings: config.instructions, agent: "tester", paths: files.map((f) => f.filename) }),
    },
  );
  await ctx.save({ tests_conclusion: report.conclusion, head_sha: pr.headSha });
  ctx.log.info({ conclusion: report.conclusion, command: report.command, reused: report.reused }, "tests reported");
  if (report.conclusion === "failure" || report.conclusion === "timed_out") {
    if (ctx.reworkLimitReached()) return ctx.blockForRework("failing tests.");
    await ctx.move("changes_requested", "tests failed");
    return ctx.next(
      "revise",
      {
        feedback: {
          source: "tests",
          text: `The test command \`${report.command}\` failed (exit code ${report.exitCode ?? "none"}). End of its output:\n\n${report.logTail}`,
          requestedBy: APP_ACTOR,
        },
      },
      pr.headSha,
    );
  }
  return ctx.next("review", {}, pr.headSha);
}
