import type { Context } from "probot";

import { findTaskByPullRequest } from "../../../store/tasks.js";
import { enqueueIntake, finish, intakeSubject, prologue, subjectOf, type InboundDeps, type TriggerOutcome } from "./prologue.js";
import { mayStartRevision } from "./review-submitted.js";

/**
 * A person's inline comment on the app's pull request (`pull_request_review_comment.created`):
 * a new thread, or a reply in one. It may start a Coder revision that answers the pull
 * request's review threads (`pipeline/review-threads.ts`); the commenter's permission is
 * checked by the `intake` job, like a review's.
 *
 * Every inline comment belongs to a review (`pull_request_review_id`): a review's own, or — for
 * GitHub's "Add single comment" and for a reply — a single-comment review of its own, for which
 * GitHub also sends `pull_request_review.submitted`. The intake is enqueued as that review
 * (state `commented`), and the revision's dedupe key names the review, so a review with three
 * comments (one `submitted` and three `created` deliveries) starts one revision. A comment
 * made while the Coder revises is answered by a revision after that one. A comment without a
 * review id (not sent by today's GitHub) is ignored.
 */
export async function handleReviewCommentCreated(context: Context<"pull_request_review_comment.created">, deps: InboundDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  const s = subjectOf(context, payload.pull_request.number);
  const early = await prologue(deps, context);
  if (early) return early;
  const reviewId = payload.comment.pull_request_review_id;
  if (reviewId === null || reviewId === undefined) return "ignored";
  const task = await findTaskByPullRequest(deps.db, s.owner, s.repo, s.number);
  // Only the app's own pull requests (they have a plan) are revised by it.
  if (!task || !task.plan) return "no_task";
  if (!mayStartRevision(task.stage)) return "ignored";
  const outcome = await enqueueIntake(
    deps,
    s,
    { event: "review", subject: intakeSubject(s), sender: { login: payload.sender.login, id: payload.sender.id }, state: "commented", reviewId, waits: 0 },
    task.id,
    task.issue_number,
  );
  return finish(deps, s, outcome, "review comment handled", { review: reviewId, comment: payload.comment.id });
}
