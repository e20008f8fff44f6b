/**
 * The review stage: the Reviewer reads the pull request's diff (or what changed since the last
 * reviewed sha) and this module publishes its review — one GitHub review with inline comments
 * and, on the app's own pull request, the check run "Mission Control / Review".
 */
import { marker } from "../../domain/markers.js";
import type { AgentRuntime } from "../../agents/context.js";
import {
  checkSummary,
  decideVerdict,
  draftReview,
  readReviewMeta,
  REVIEW_CHECK_NAME,
  type ReviewInput,
  type ReviewResult,
  type Verdict,
  VERDICT_CONCLUSION,
} from "../../agents/reviewer.js";
import type { RepositoryGuidance } from "../../agents/instructions.js";
import { loadRepositoryGuidance } from "../../agents/load-instructions.js";
import { GitHubApiError, isMissionControlError } from "../../domain/errors.js";
import { maybeAutoMerge } from "./merge.js";
import { withRepositoryMemory } from "../repository-memory.js";
import type { StageContext } from "../stage-context.js";
import type { StageOutcome } from "../pipeline-deps.js";
import type { BotIdentity, CheckRunData, GitHubPort, PullRequestData, PullRequestFile, ReviewEvent } from "../../ports/github.js";

/**
 * Reviews a pull request's diff and submits one GitHub review with inline comments.
 *
 * - **Output**: the model calls `submit_review` (`{ event, body, comments }`). Comments on lines
 *   GitHub can place (see `partitionComments`) go inline; the rest are written into the body
 *   under "Comments on lines outside the diff", so the review is never refused with a 422.
 * - **Size**: a diff over `budgetChars` is reviewed in parts (one model call each, at most 4),
 *   then merged into one review whose event is the most severe of the parts. Files not
 *   reviewed (no patch, over the budget) are listed in the body; an approval is withheld while
 *   a changed text file was left out for size.
 * - **Re-review**: with `sinceSha` (≠ head) only `compare(sinceSha...head)` is reviewed.
 * - **Verdict**: with `testsFailing` or `!allowApprove` an approval becomes a comment, with a
 *   line saying why. On a pull request the app opened (`author === bot.login`) GitHub refuses
 *   APPROVE and REQUEST_CHANGES from its author, so the event is COMMENT and the verdict is the
 *   conclusion of the check run "Mission Control / Review" on the head sha (approve → success,
 *   request_changes → failure, comment → neutral). On anyone else's pull request the event
 *   carries the verdict and no check run is made.
 * - **Idempotent** per head sha: a review by the bot carrying `marker("review:<sha>")` is reused
 *   without calling the model; the check run is still brought to its completed state.
 * - **Guidance**: `deps.guidance`, when given, reads the repository's instruction files that
 *   apply to the pull request's changed files; they precede the diff in the prompt.
 *
 * @throws {AgentOutputError} when the model never calls `submit_review` (the check run, if any,
 *   is completed as a failure first)
 * @throws {GitHubApiError} when GitHub refuses a call
 */
export async function reviewPullRequest(
  runtime: AgentRuntime,
  deps: { github: GitHubPort; bot: BotIdentity; guidance?: (paths: string[]) => Promise<RepositoryGuidance | null> },
  input: ReviewInput,
): Promise<ReviewResult> {
  const { github, bot } = deps;
  const pr = await github.getPullRequest(input.pullNumber);
  const headSha = pr.headSha;
  const own = pr.author === bot.login;
  const tag = marker(`review:${headSha}`);

  // Only our own reviews count: anyone can paste the marker into a review of theirs.
  const previous = (await github.listReviews(pr.number)).find((r) => r.author === bot.login && r.body.includes(tag));
  if (previous) {
    const meta = readReviewMeta(previous);
    const { verdict, withheld } = own
      ? decideVerdict(meta.model, { testsFailing: input.testsFailing, allowApprove: input.allowApprove, overBudget: meta.overBudget })
      : { verdict: meta.verdict, withheld: [] };
    const checkRun = own ? await completeCheck(github, headSha, verdict, checkSummary(verdict, withheld, previous, meta.notReviewed)) : null;
    return {
      review: previous,
      verdict,
      reused: true,
      headSha,
      inlineComments: meta.inline,
      foldedComments: meta.folded,
      notReviewed: meta.notReviewed,
      checkRun,
    };
  }

  const check = own ? await github.ensureCheckRun({ name: REVIEW_CHECK_NAME, headSha, externalId: `review:${headSha}`, status: "in_progress" }) : null;
  try {
    return await review(runtime, github, pr, input, { tag, own, check, ...(deps.guidance ? { guidance: deps.guidance } : {}) });
  } catch (err) {
    if (check && isMissionControlError(err) && !err.retryable && err.code !== "job_aborted") {
      // A permanent failure must not leave the check spinning, nor look neutral (which passes a required check).
      await github
        .updateCheckRun(check.id, {
          status: "completed",
          conclusion: "failure",
          output: { title: "The review could not be completed", summary: err.userMessage },
        })
        .catch(() => undefined);
    }
    throw err;
  }
}

async function review(
  runtime: AgentRuntime,
  github: GitHubPort,
  pr: PullRequestData,
  input: ReviewInput,
  ctx: { tag: string; own: boolean; check: CheckRunData | null; guidance?: (paths: string[]) => Promise<RepositoryGuidance | null> },
): Promise<ReviewResult> {
  const headSha = pr.headSha;
  const scope = await reviewScope(github, pr, input.sinceSha);
  const guidance = ctx.guidance ? await ctx.guidance(scope.pullRequestFiles.map((f) => f.filename)) : (input.guidance ?? null);
  const draft = await draftReview(runtime, pr, { ...input, guidance }, scope, ctx.tag);
  const { verdict } = draft;
  const event: ReviewEvent = ctx.own ? "COMMENT" : verdict === "approve" ? "APPROVE" : verdict === "request_changes" ? "REQUEST_CHANGES" : "COMMENT";
  const posted = await github.createReview({ pullNumber: pr.number, commitId: headSha, event, body: draft.body, comments: draft.inline });
  const checkRun = ctx.check
    ? await completeCheck(github, headSha, verdict, checkSummary(verdict, draft.withheld, posted, draft.notReviewed), ctx.check)
    : null;
  return {
    review: posted,
    verdict,
    reused: false,
    headSha,
    inlineComments: draft.inline.length,
    foldedComments: draft.foldedComments,
    notReviewed: draft.notReviewed,
    checkRun,
  };
}

/** Which files the review covers: the compare since the last reviewed sha, or the whole pull request. */
async function reviewScope(
  github: GitHubPort,
  pr: PullRequestData,
  sinceSha: string | null,
): Promise<{ files: PullRequestFile[]; pullRequestFiles: PullRequestFile[]; sinceSha: string | null; note: string }> {
  const pullRequestFiles = await github.listPullRequestFiles(pr.number);
  if (!sinceSha || sinceSha === pr.headSha) return { files: pullRequestFiles, pullRequestFiles, sinceSha: null, note: "" };
  let files: PullRequestFile[];
  try {
    files = await github.compareCommits(sinceSha, pr.headSha);
  } catch (err) {
    // 404: the sha is gone (force-push); 422/404 "no common ancestor". Review everything instead.
    if (err instanceof GitHubApiError && (err.status === 404 || err.status === 422)) {
      return {
        files: pullRequestFiles,
        pullRequestFiles,
        sinceSha: null,
        note: `_The previously reviewed commit \`${sinceSha.slice(0, 7)}\` is no longer comparable with the head, so the whole pull request was reviewed._`,
      };
    }
    throw err;
  }
  if (files.length === 0) {
    return {
      files: pullRequestFiles,
      pullRequestFiles,
      sinceSha: null,
      note: `_No file changed since \`${sinceSha.slice(0, 7)}\`, so the whole pull request was reviewed._`,
    };
  }
  return { files, pullRequestFiles, sinceSha, note: "" };
}

/** Brings the review check run to `completed` with the verdict's conclusion (skipped when it already is). */
async function completeCheck(
  github: GitHubPort,
  headSha: string,
  verdict: Verdict,
  output: { title: string; summary: string },
  known?: CheckRunData,
): Promise<CheckRunData> {
  const check = known ?? (await github.ensureCheckRun({ name: REVIEW_CHECK_NAME, headSha, externalId: `review:${headSha}`, status: "in_progress" }));
  const conclusion = VERDICT_CONCLUSION[verdict];
  if (check.status === "completed" && check.conclusion === conclusion) return check;
  return github.updateCheckRun(check.id, { status: "completed", conclusion, output });
}

/**
 * `review`: state `reviewing`. The Reviewer reviews the diff (or what changed since the last
 * reviewed sha); one review with inline comments is published. Next: `ready_for_merge` (then the
 * `auto_merge` check), or `changes_requested` → `revise`.
 */
export async function reviewStage(ctx: StageContext): Promise<StageOutcome> {
  await ctx.move("reviewing", "review started");
  const task = ctx.task;
  const config = ctx.config;
  if (!task.pr_number) throw new Error("the task has no pull request to review");
  const result = await reviewPullRequest(
    ctx.runtime("reviewer"),
    {
      github: ctx.github,
      bot: await ctx.github.getBotIdentity(),
      guidance: async (paths) =>
        withRepositoryMemory(
          ctx.deps.db,
          ctx.task,
          config,
          await loadRepositoryGuidance(ctx.github, { ref: task.default_branch, settings: config.instructions, agent: "reviewer", paths }),
          paths,
          { github: ctx.github, log: ctx.log },
        ),
    },
    {
      pullNumber: task.pr_number,
      plan: task.plan ? ctx.plan() : null,
      sinceSha: task.reviewed_sha,
      testsFailing: task.tests_conclusion === "failure" || task.tests_conclusion === "timed_out",
      allowApprove: config.review.approve,
    },
  );
  await ctx.save({ review_url: result.review.htmlUrl, review_verdict: result.verdict, reviewed_sha: result.headSha, head_sha: result.headSha });
  ctx.log.info({ verdict: result.verdict, reused: result.reused, inline: result.inlineComments }, "review submitted");

  if (result.verdict === "request_changes" && task.plan) {
    if (ctx.reworkLimitReached()) return ctx.blockForRework("changes requested by the Reviewer.");
    await ctx.move("changes_requested", "the Reviewer requested changes");
    return ctx.next("revise", { feedback: { source: "review", reviewId: result.review.id, requestedBy: "Reviewer" } }, result.headSha);
  }
  if (result.verdict === "request_changes") {
    await ctx.move("changes_requested", "the Reviewer requested changes");
    return {};
  }
  await ctx.move("ready_for_merge", `review verdict: ${result.verdict}`, { finished_at: Date.now() });
  if (config.auto_merge) await maybeAutoMerge(ctx);
  return {};
}
