/**
 * The code stage: the Coder implements the plan (or revises the pull request) on the run's
 * branch, and this module opens or finds the pull request and replies after a revision.
 */
import {
  branchName,
  type CoderInput,
  type CoderResult,
  type CoderWorkspace,
  implementChanges,
  pullRequestBody,
  type RevisionFeedback,
  revisionReply,
} from "../../agents/coder.js";
import type { AgentRuntime } from "../../agents/context.js";
import { loadRepositoryGuidance } from "../../agents/load-instructions.js";
import { CI_NOT_FIXABLE_NOTE, CI_NOT_FIXABLE_REASON } from "../../domain/ci.js";
import { APP_ACTOR } from "../../domain/jobs.js";
import type { BotIdentity, GitHubPort } from "../../ports/github.js";
import { ciNoChangeTopic, failingChecks, renderCiNoChange } from "../../render/ci-no-change.js";
import { safeName } from "../ci-feedback.js";
import { ciNotFixableNote, ciRecheckJob } from "../ci-intake.js";
import { writeTracking } from "../reporter.js";
import { recordLearningProposal } from "../memory-proposals.js";
import { withRepositoryMemory } from "../repository-memory.js";
import { replyInThreads } from "../review-threads.js";
import { setTrackingNote } from "../../store/tasks.js";
import { prepareWorkspace, pruneWorkspaces, workspaceDir } from "../../workspace/workspaces.js";
import type { StageContext } from "../stage-context.js";
import type { StageOutcome } from "../pipeline-deps.js";

/**
 * Runs the Coder, then opens the pull request (`POST /repos/{owner}/{repo}/pulls`, `Closes
 * #<n>`; a draft when a limit stopped the Coder) unless one is given or an open one exists for
 * the branch (`GET /repos/{owner}/{repo}/pulls?head=…`).
 *
 * @throws {AgentOutputError} when the model changed no file (but see `implementChanges`)
 */
export async function implementIssue(
  runtime: AgentRuntime,
  deps: { github: GitHubPort; workspace: CoderWorkspace; bot: BotIdentity },
  input: CoderInput,
): Promise<CoderResult> {
  const { github } = deps;
  const work = await implementChanges(runtime, { workspace: deps.workspace, bot: deps.bot }, input);
  let pullRequest = input.pullRequest;
  if (!pullRequest) {
    const existing = await github.findPullRequestByBranch(input.branch);
    pullRequest =
      existing && existing.state === "open"
        ? existing
        : await github.createPullRequest({
            title: input.issue.title,
            body: pullRequestBody(input.issue.number, input.plan, work.summary),
            head: input.branch,
            base: input.defaultBranch,
            draft: work.stopped !== null,
          });
  }
  return { ...work, pullRequest };
}

/**
 * Replies on the pull request after a revision: what changed and at which commit. One comment
 * per head sha (`ensureComment`, topic `revision:<sha>`), so a retried job does not reply twice.
 */
async function replyToRevision(github: GitHubPort, pullNumber: number, result: CoderResult, feedback: RevisionFeedback): Promise<void> {
  await github.ensureComment({ issueNumber: pullNumber, topic: `revision:${result.headSha}`, body: revisionReply(result, feedback) });
}

/**
 * A CI revision that changed nothing ({@link CoderResult.nothingToFix}): one reply on the pull
 * request per head (`ensureComment`, topic `ci-no-change:<sha>`) with the failed checks and the
 * Coder's reason, then the task stops in `blocked` — nothing pushed, no tests or review. The
 * tracking note {@link CI_NOT_FIXABLE_NOTE} and the transition's reason
 * {@link CI_NOT_FIXABLE_REASON} mark the stop: once the checks pass on a re-run of this head,
 * the CI intake moves the task back to `ready_for_merge` (`isBlockedOnUnfixableCi`). A re-run that
 * passed while the Coder worked was not queued for it, so the stop queues one pass intake for the
 * head after this job (`ciRecheckJob`): the head's checks are read once, now that the task waits.
 */
async function blockOnUnfixableCi(ctx: StageContext, feedback: RevisionFeedback, result: CoderResult): Promise<StageOutcome> {
  const checks = (feedback.checks ?? []).map(safeName);
  const pullNumber = result.pullRequest.number;
  const sha = result.headSha.slice(0, 7);
  // The reply first: a retry after a failed post finds the task still `coding`, not stopped.
  await ctx.github.ensureComment({
    issueNumber: pullNumber,
    topic: ciNoChangeTopic(result.headSha),
    body: renderCiNoChange({ headSha: result.headSha, checks, reason: result.summary }),
  });
  ctx.log.info({ pr: pullNumber, headSha: result.headSha, checks: feedback.checks }, "CI revision: nothing to fix, no change pushed");
  // The note marks this stop (with its transition's reason): a passing re-run of the checks on this head ends it (`ci-intake.ts`).
  await setTrackingNote(ctx.deps.db, ctx.task.id, CI_NOT_FIXABLE_NOTE, ciNotFixableNote(result.headSha));
  await ctx.move("blocked", CI_NOT_FIXABLE_REASON, {
    blocked_reason: `The Coder made no change for ${failingChecks(checks)} on \`${sha}\`: it judged the failure not fixable by changing the code (its reason is on pull request #${pullNumber}). Re-run the failed checks, or comment \`/code <instructions>\` on the pull request for a change.`,
  });
  return { next: ciRecheckJob(ctx.deps, ctx.task, pullNumber, result.headSha, ctx.job.delivery_id) };
}

/**
 * `code`: state `coding`. The issue's clone is prepared, the run's branch (`mc/issue-<n>-<slug>`,
 * `-run<k>` for run k > 1) checked out, the Coder implements the plan (or the revision), and the
 * pull request is opened or found. Next: `test` (nonce: the head sha), or `blocked` at a Coder limit
 * or when a CI revision found nothing to change.
 */
export async function codeStage(ctx: StageContext, given: RevisionFeedback | null): Promise<StageOutcome> {
  const notes = ctx.notes();
  const feedback: RevisionFeedback | null =
    given ?? (notes && ctx.task.pr_number ? { source: "command", text: notes.text, comments: [], requestedBy: notes.author } : null);
  if (!ctx.task.started_at) await ctx.save({ started_at: Date.now() });
  if (ctx.task.stage !== "coding") {
    if (feedback && ctx.task.stage !== "changes_requested") await ctx.move("changes_requested", `revision requested (${feedback.source})`);
    await ctx.move("coding", feedback ? `revising after ${feedback.source}` : "implementation started");
  }
  const task = ctx.task;
  const config = ctx.config;
  const issue = await ctx.issueForPrompt();
  // Each run gets its own branch, so a new run never builds on a merged or abandoned one.
  const branch = task.branch ?? `${branchName(task.issue_number, issue.title)}${task.run > 1 ? `-run${task.run}` : ""}`;
  const dir = workspaceDir(ctx.deps.workspacesDir, task.owner, task.repo, task.issue_number);
  await pruneWorkspaces(ctx.deps.workspacesDir, ctx.deps.workspacesMaxBytes, new Set([dir])).catch((err: unknown) =>
    ctx.log.warn({ err }, "pruning workspaces failed"),
  );
  const { workspace } = await prepareWorkspace({
    dir,
    cloneUrl: task.clone_url,
    token: await ctx.github.createGitToken(),
    defaultBranch: task.default_branch,
    branch,
    settings: ctx.deps.git,
  });
  const onBranch = await workspace.remoteBranchExists(branch);
  if (!onBranch) await workspace.createBranch(branch);
  await ctx.save({ branch });

  const plan = ctx.plan();
  const existingPr = task.pr_number ? await ctx.github.getPullRequest(task.pr_number) : await ctx.github.findPullRequestByBranch(branch);
  const openPr = existingPr && existingPr.state === "open" ? existingPr : null;

  // Resumed after an interruption: this run's branch already carries the Coder's commits but no PR was recorded.
  if (!feedback && !task.pr_number && onBranch && (await workspace.commitsAhead(`origin/${task.default_branch}`)) > 0) {
    const pr =
      openPr ??
      (await ctx.github.createPullRequest({
        title: issue.title,
        body: pullRequestBody(task.issue_number, plan, "_(resumed: the branch was pushed by an earlier attempt)_"),
        head: branch,
        base: task.default_branch,
        draft: false,
      }));
    await ctx.save({ pr_number: pr.number, pr_url: pr.htmlUrl, head_sha: pr.headSha });
    ctx.log.info({ pr: pr.number }, "resumed: branch already pushed, pull request ensured");
    ctx.task = await writeTracking(ctx.deps.db, ctx.github, ctx.task);
    return ctx.next("test", {}, pr.headSha);
  }

  const ceilings = ctx.deps.coderCeilings;
  // The repository's guidance for the paths the Coder is to touch: the plan's files and those of the feedback it answers.
  const guidancePaths = [
    ...plan.files_to_change.map((f) => f.path),
    ...(feedback?.comments.map((c) => c.path) ?? []),
    ...(feedback?.threads?.map((t) => t.path) ?? []),
  ];
  const guidance = await withRepositoryMemory(
    ctx.deps.db,
    ctx.task,
    config,
    await loadRepositoryGuidance(ctx.github, { ref: task.default_branch, settings: config.instructions, agent: "coder", paths: guidancePaths }),
    guidancePaths,
    { github: ctx.github, log: ctx.log },
  );
  const sandbox = ctx.deps.sandbox(workspace.root);
  const result = await implementIssue(
    ctx.runtime("coder"),
    { github: ctx.github, workspace, bot: await ctx.github.getBotIdentity() },
    {
      issue,
      plan,
      defaultBranch: task.default_branch,
      branch,
      pullRequest: openPr,
      feedback,
      notes: !feedback && notes ? notes : null,
      limits: {
        maxTurns: Math.min(config.coder.max_turns, ceilings.maxTurns),
        maxTokens: config.coder.max_tokens,
        maxOutputTokens: Math.min(config.coder.max_output_tokens, ceilings.maxOutputTokens),
        maxMs: Math.min(config.coder.max_minutes, ceilings.maxMinutes) * 60_000,
      },
      protectedPaths: config.protected_paths,
      protectedPathsApproved: Boolean(task.approved_by),
      coAuthor: task.triggered_by && task.triggered_by !== APP_ACTOR ? { login: task.triggered_by, id: task.triggered_by_id } : null,
      guidance,
      runCommand: async (command) => {
        const outcome = await sandbox(command, { timeoutMs: config.test.timeout_minutes * 60_000, network: false, signal: ctx.signal });
        const log = `${outcome.stdout}\n${outcome.stderr}`.trim().split("\n").slice(-80).join("\n");
        return `exit code: ${outcome.exitCode ?? "killed"}${outcome.timedOut ? " (timed out)" : ""}, ${(outcome.durationMs / 1000).toFixed(1)} s\n${log}`;
      },
    },
  );
  await ctx.save({ pr_number: result.pullRequest.number, pr_url: result.pullRequest.htmlUrl, head_sha: result.headSha });
  ctx.log.info({ pr: result.pullRequest.number, branch, turns: result.turns, stopped: result.stopped?.limit }, "coder finished");

  if (feedback?.source === "ci" && result.nothingToFix) return blockOnUnfixableCi(ctx, feedback, result);
  if (feedback && result.changedFiles.length > 0) await replyToRevision(ctx.github, result.pullRequest.number, result, feedback);
  // A reply in each review thread the revision was given, once its commit is pushed (not when a limit stopped it: the work is not done).
  if (feedback?.threads?.length && !result.stopped) {
    await replyInThreads(ctx.github, {
      pullNumber: result.pullRequest.number,
      headSha: result.headSha,
      threads: feedback.threads,
      answers: result.threadAnswers ?? [],
      appLogin: (await ctx.github.getBotIdentity()).login,
      log: ctx.log,
      // Repository memory: a learning the reply proposes waits for a writer's 👍.
      onProposal: (proposal) => recordLearningProposal(ctx.deps.db, ctx.task, result.pullRequest.number, proposal),
    });
  }
  if (result.stopped) {
    await ctx.move("blocked", `coder limit: ${result.stopped.limit}`, {
      blocked_reason: `${result.stopped.message} The work so far is pushed to \`${branch}\` (pull request #${result.pullRequest.number}${result.pullRequest.draft ? ", a draft" : ""}); it is not done. Comment \`/code <instructions>\` to continue.`,
    });
    return {};
  }
  ctx.task = await writeTracking(ctx.deps.db, ctx.github, ctx.task);
  return ctx.next("test", {}, result.headSha);
}
