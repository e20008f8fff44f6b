import type { RevisionFeedback } from "../../agents/coder.js";
import { CI_NOT_FIXABLE_NOTE } from "../../domain/ci.js";
import type { StageJobPayload } from "../../domain/jobs.js";
import { sanitizeUntrustedText } from "../../prompt/index.js";
import { clearTrackingNote } from "../../store/tasks.js";
import { collectReviewThreads } from "../review-threads.js";
import { codeStage } from "./code.js";
import { safeName } from "../ci-feedback.js";
import type { StageContext } from "../stage-context.js";
import type { StageOutcome } from "../pipeline-deps.js";

/**
 * `revise`: the feedback (failing test log, a review and its inline comments, `/code`
 * instructions) goes to the Coder on the existing branch; counts a rework cycle once per job.
 */
export async function reviseStage(ctx: StageContext): Promise<StageOutcome> {
  const feedback = ctx.payload.feedback;
  if (!feedback) throw new Error("a revise job needs feedback");
  if (!ctx.task.pr_number) return codeStage(ctx, null);
  // CI feedback is about one commit: once the pull request moved on (another revision, a push), it is stale.
  // Checked on the first attempt only: a retry may find the head this very job pushed.
  if (feedback.source === "ci" && feedback.headSha && ctx.job.attempts <= 1) {
    const pr = await ctx.github.getPullRequest(ctx.task.pr_number);
    if (pr.state !== "open" || pr.headSha !== feedback.headSha) {
      ctx.log.info({ failedOn: feedback.headSha, head: pr.headSha, state: pr.state }, "the CI failure is about an older head: nothing to revise");
      return {};
    }
  }
  if (ctx.reworkLimitReached() && feedback.source !== "command") {
    // A resting task (ready_for_merge) cannot stop directly: the request is recorded first (changes_requested → blocked).
    if (ctx.task.stage === "ready_for_merge") await ctx.move("changes_requested", `revision requested (${feedback.source})`);
    return ctx.blockForRework(
      `${feedback.source === "tests" ? "failing tests" : feedback.source === "ci" ? `the repository's failing checks${ciChecks(feedback.checks)}` : "requested changes"}.`,
    );
  }
  const revision = await feedbackFor(ctx, feedback);
  if (revision.source === "review" && !revision.text && revision.comments.length === 0 && !revision.threads?.length) {
    ctx.log.info("the review has no body and no comments: nothing to revise");
    return {};
  }
  // Counted once per revision job, not again when a transient failure retries it.
  if (ctx.job.attempts <= 1) await ctx.save({ rework_cycles: ctx.task.rework_cycles + 1 });
  // A revision ends any wait for a passing re-run of the checks (a stop on a CI failure the Coder found nothing to fix): its note goes.
  await clearTrackingNote(ctx.deps.db, ctx.task.id, CI_NOT_FIXABLE_NOTE);
  return codeStage(ctx, revision);
}

/**
 * The revision's feedback, sanitised: for a review, its body and the pull request's review
 * threads awaiting an answer (`pipeline/review-threads.ts`: whole, unresolved, writers only),
 * plus the review's inline comments that are in no such thread (the app's own Reviewer's); for
 * CI, the failed checks' names.
 */
async function feedbackFor(ctx: StageContext, payload: NonNullable<StageJobPayload["feedback"]>): Promise<RevisionFeedback> {
  let comments: RevisionFeedback["comments"] = [];
  let threads: RevisionFeedback["threads"];
  let text = sanitizeUntrustedText(payload.text ?? "");
  if (payload.source === "review" && ctx.task.pr_number) {
    const appLogin = (await ctx.github.getBotIdentity()).login;
    const collected = await collectReviewThreads(ctx.github, ctx.task.pr_number, { appLogin, log: ctx.log });
    threads = collected.threads;
    const all = await ctx.github.listReviewComments(ctx.task.pr_number);
    comments = all
      .filter((c) => !collected.handled.has(c.id))
      .filter((c) => (payload.reviewId ? c.reviewId === payload.reviewId : true))
      .map((c) => ({ path: c.path, line: c.line, body: sanitizeUntrustedText(c.body), author: c.author }));
    if (payload.reviewId && !text) {
      const review = (await ctx.github.listReviews(ctx.task.pr_number)).find((r) => r.id === payload.reviewId);
      text = sanitizeUntrustedText(review?.body ?? "");
    }
  }
  return {
    source: payload.source,
    text,
    comments,
    requestedBy: payload.requestedBy,
    ...(threads ? { threads } : {}),
    ...(payload.source === "ci" && payload.checks ? { checks: payload.checks } : {}),
  };
}

/** ` (`a`, `b`)`: the failed checks' names for the rework-limit message, or nothing. */
function ciChecks(checks: readonly string[] | undefined): string {
  return checks && checks.length > 0 ? ` (${checks.slice(0, 5).map(safeName).join(", ")})` : "";
}
