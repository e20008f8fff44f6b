import type { RevisionFeedback } from "../../agents/coder.js";
import type { StageJobPayload } from "../../domain/jobs.js";
import { sanitizeUntrustedText } from "../../prompt/index.js";
import { codeStage } from "./code.js";
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
  if (ctx.reworkLimitReached() && feedback.source !== "command")
    return ctx.blockForRework(`${feedback.source === "tests" ? "failing tests" : "requested changes"}.`);
  const revision = await feedbackFor(ctx, feedback);
  if (revision.source === "review" && !revision.text && revision.comments.length === 0) {
    ctx.log.info("the review has no body and no comments: nothing to revise");
    return {};
  }
  // Counted once per revision job, not again when a transient failure retries it.
  if (ctx.job.attempts <= 1) await ctx.save({ rework_cycles: ctx.task.rework_cycles + 1 });
  return codeStage(ctx, revision);
}

/** The revision's feedback, sanitised: for a review, its body and inline comments as GitHub has them. */
async function feedbackFor(ctx: StageContext, payload: NonNullable<StageJobPayload["feedback"]>): Promise<RevisionFeedback> {
  let comments: RevisionFeedback["comments"] = [];
  let text = sanitizeUntrustedText(payload.text ?? "");
  if (payload.source === "review" && ctx.task.pr_number) {
    const all = await ctx.github.listReviewComments(ctx.task.pr_number);
    comments = all
      .filter((c) => (payload.reviewId ? c.reviewId === payload.reviewId : true))
      .map((c) => ({ path: c.path, line: c.line, body: sanitizeUntrustedText(c.body), author: c.author }));
    if (payload.reviewId && !text) {
      const review = (await ctx.github.listReviews(ctx.task.pr_number)).find((r) => r.id === payload.reviewId);
      text = sanitizeUntrustedText(review?.body ?? "");
    }
  }
  return { source: payload.source, text, comments, requestedBy: payload.requestedBy };
}
