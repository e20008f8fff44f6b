import { canWrite } from "../../domain/guards.js";
import type { BotIdentity, PullRequestData, ReviewData } from "../../ports/github.js";
import type { StageContext } from "../stage-context.js";
import type { StageOutcome } from "../pipeline-deps.js";

/**
 * `merge`: a person's approval of the app's pull request while it is `ready_for_merge`, with
 * `auto_merge: true`. Both are checked again here, when the job runs: a `/stop` (or anything
 * else that moved the task) between the approval and this job means no merge.
 */
export async function mergeStage(ctx: StageContext): Promise<StageOutcome> {
  if (!ctx.config.auto_merge || ctx.task.stage !== "ready_for_merge") {
    ctx.log.info(
      { stage: ctx.task.stage, autoMerge: ctx.config.auto_merge },
      "auto_merge: not merging: the task is no longer ready for merge, or auto_merge is off",
    );
    return {};
  }
  await maybeAutoMerge(ctx);
  return {};
}

/**
 * The approvals `auto_merge` counts: `APPROVED` reviews by a person (not the app, not a
 * `[bot]`) given on the pull request's current head sha (`commit_id`) by someone with write,
 * maintain or admin permission (`GET /repos/{owner}/{repo}/collaborators/{username}/permission`,
 * asked once per reviewer). Every other approval is ignored and logged with the reason.
 */
async function approvalsThatCount(ctx: StageContext, pr: PullRequestData, bot: BotIdentity): Promise<ReviewData[]> {
  const writers = new Map<string, { writer: boolean; permission: string }>();
  const counted: ReviewData[] = [];
  for (const review of await ctx.github.listReviews(pr.number)) {
    if (review.state !== "APPROVED") continue;
    const fields = { reviewer: review.author, reviewId: review.id, commitId: review.commitId, headSha: pr.headSha };
    if (review.author === bot.login || review.author.endsWith("[bot]")) {
      ctx.log.info({ ...fields, reason: "bot" }, "auto_merge: approval ignored: it comes from a bot");
      continue;
    }
    if (review.commitId !== pr.headSha) {
      ctx.log.info({ ...fields, reason: "older_head" }, "auto_merge: approval ignored: it was given on an older head, not the pull request's current one");
      continue;
    }
    let access = writers.get(review.author);
    if (!access) {
      const answer = await ctx.github.getRepositoryPermission(review.author);
      access = { writer: canWrite({ permission: answer.permission, role_name: answer.roleName }), permission: answer.roleName ?? answer.permission };
      writers.set(review.author, access);
    }
    if (!access.writer) {
      ctx.log.info(
        { ...fields, reason: "no_write_permission", permission: access.permission },
        "auto_merge: approval ignored: the reviewer has no write permission",
      );
      continue;
    }
    counted.push(review);
  }
  return counted;
}

/**
 * Squash-merges the PR (`PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge`, pinned to the
 * head sha it checked) only when every check run on that head passed, the "Mission Control /
 * Review" check is a success, and a person with write permission approved that head (see
 * {@link approvalsThatCount}). The caller checks `auto_merge` and the task's state.
 */
export async function maybeAutoMerge(ctx: StageContext): Promise<void> {
  const task = ctx.task;
  if (!task.pr_number) return;
  const pr = await ctx.github.getPullRequest(task.pr_number);
  const bot = await ctx.github.getBotIdentity();
  const checks = await ctx.github.listCheckRuns(pr.headSha);
  // Every check completed without failing, and the app's own verdict is an explicit success.
  const allPassed =
    checks.length > 0 &&
    checks.every((c) => c.status === "completed" && (c.conclusion === "success" || c.conclusion === "skipped" || c.conclusion === "neutral")) &&
    checks.some((c) => c.name === "Mission Control / Review" && c.conclusion === "success");
  const humanApproved = (await approvalsThatCount(ctx, pr, bot)).length > 0;
  if (!allPassed || !humanApproved) {
    ctx.log.info({ allPassed, humanApproved }, "auto_merge: waiting for checks and a human approval");
    return;
  }
  await ctx.github.mergePullRequest(pr.number, pr.headSha, "squash");
  ctx.log.info({ pr: pr.number }, "auto_merge: merged");
}
